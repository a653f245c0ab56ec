"""``python -m housing.registry``: the same CLI as the ``housing-registry`` script."""

from housing.registry.cli import app

app(prog_name="housing-registry")
