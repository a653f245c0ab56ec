"""Backward-compatible names: the registry operations now live one concern a module.

:mod:`~housing.registry.log` (run logging), :mod:`~housing.registry.register` (versions,
tags, the gate call), :mod:`~housing.registry.gates` (the pure decision),
:mod:`~housing.registry.promote` (alias moves), :mod:`~housing.registry.history` (the
champion event log), :mod:`~housing.registry.lookup` (list, show, resolve).
"""

from housing.registry.log import flatten_params
from housing.registry.lookup import list_versions, resolve, version_for_alias
from housing.registry.promote import promote, rollback
from housing.registry.register import log_and_register

__all__ = [
    "flatten_params",
    "list_versions",
    "log_and_register",
    "promote",
    "resolve",
    "rollback",
    "version_for_alias",
]
