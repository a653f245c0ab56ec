"""``python -m housing.sweep worker ...``: the ``housing-sweep`` command without its script."""

from housing.sweep.cli import main

if __name__ == "__main__":
    main()
