"""Build the project's three images with podman, the way `.ci/run` and `make images` do.

    python -m scripts.images build            # pipeline, API and app images; sizes and times
    python -m scripts.images build api --no-cache

`podman.py` installs podman/runc from Debian when missing and writes the containers.conf this
sandbox needs; `base.py` picks the base image (`python:3.11-slim` when it can be pulled, else a
local Debian bookworm base built with debootstrap); `build.py` builds from the same
Dockerfiles a Docker user builds, mounting the host's CA bundle for the install step only.
"""
