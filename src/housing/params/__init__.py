"""The typed schema of ``params.yaml``: one module per section, named like its stage.

A stage validates only its own section (``stage.params("split", SplitParams)``) and lists
only that section's module among its DVC dependencies, so editing one section's schema
re-runs one stage. Rules that span sections (seeds that must differ, families that need a
search space) live in :mod:`housing.params.file`, which ``housing-params check`` runs over
the whole file before ``make pipeline`` starts.

Nothing is imported here: importing a section's module must not load the others.
"""
