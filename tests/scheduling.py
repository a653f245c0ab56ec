"""How `make test` spreads the suite over the cores: pytest-xdist with our own work units.

A work unit is a test file, or a whole folder where its files share costly session fixtures
(a GCS emulator with a pushed pipeline, podman's images): a unit runs on one worker, so each
such fixture is built once. Units start costliest first (their measured seconds in
``tests/test_durations.json``), so the long ones never start last and leave one core idle;
each worker takes the next unit when it runs out (xdist's load-scope scheduling).

``scripts/test_all.sh`` writes this run's seconds per unit to ``test-output/durations.json``
(``--unit-durations``); copy it over ``tests/test_durations.json`` when the suite's shape
changes. A unit missing from the table counts by its markers, so a new file is still placed
sensibly.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
COSTS_FILE = HERE / "test_durations.json"

# Folders whose files share session fixtures too costly to build once per worker.
TOGETHER = ("tests/remote/", "tests/containers/")
# Seconds assumed for a unit missing from the table, by its costliest marker.
DEFAULT_COST = {"e2e": 300.0, "containers": 300.0, "slow": 60.0}
UNMARKED_COST = 1.0


def unit_of(nodeid: str) -> str:
    """The work unit of a test: its folder when listed in TOGETHER, else its file."""
    path = nodeid.split("::", 1)[0]
    for folder in TOGETHER:
        if path.startswith(folder):
            return folder.rstrip("/")
    return path


def known_costs() -> dict[str, float]:
    try:
        return {k: float(v) for k, v in json.loads(COSTS_FILE.read_text()).items()}
    except FileNotFoundError:
        return {}


def unique_nodeids(items: list[pytest.Item]) -> None:
    """Give every item a node id of its own.

    schemathesis' ``schema.parametrize()`` gives all its items (one per API operation) the
    function's node id; xdist schedules by node id, so it would run one of them and drop the
    rest. Each gets its operation (``test_no_server_errors[POST /api/v1/predict]``).
    """
    count: dict[str, int] = defaultdict(int)
    for item in items:
        count[item.nodeid] += 1
    for index, item in enumerate(items):
        if count[item.nodeid] > 1:
            label = getattr(item, "operation_label", None) or f"#{index}"
            _set_nodeid(item, f"{item.nodeid}[{label}]")
    assert len({item.nodeid for item in items}) == len(items), "duplicate test node ids"


def _set_nodeid(item: pytest.Item, nodeid: str) -> None:
    # pytest 9 keeps the id as a parsed NodeId in ``_id`` (earlier: the string ``_nodeid``);
    # the assertion in unique_nodeids catches a pytest that keeps it elsewhere.
    if hasattr(item, "_id"):
        from _pytest.nodeid import coerce_node_id

        item._id = coerce_node_id(nodeid)
    else:
        item._nodeid = nodeid


def order_by_cost(items: list[pytest.Item]) -> None:
    """Reorder ``items`` in place: costliest unit first, each unit's tests kept in order."""
    costs = known_costs()
    guessed: dict[str, float] = defaultdict(float)
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        guess = max((DEFAULT_COST[m] for m in marks if m in DEFAULT_COST), default=UNMARKED_COST)
        guessed[unit_of(item.nodeid)] += guess
    cost = {unit: costs.get(unit, guess) for unit, guess in guessed.items()}
    first_seen = {}
    for index, item in enumerate(items):
        first_seen.setdefault(unit_of(item.nodeid), index)
    items.sort(key=lambda it: (-cost[unit_of(it.nodeid)], first_seen[unit_of(it.nodeid)]))


def make_scheduler(config: pytest.Config, log):
    """With ``--dist loadfile``: xdist's load-scope scheduling over our units, in the order
    the items were sorted (None for the other modes: xdist's own scheduler)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class CostFirstUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False  # keep order_by_cost's order (not test counts)
    return CostFirstUnits(config, log)


class UnitClock:
    """Sums each unit's setup, call and teardown seconds; writes them at the end (controller)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[unit_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.seconds or os.environ.get("PYTEST_XDIST_WORKER"):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ordered = dict(sorted(self.seconds.items(), key=lambda kv: -kv[1]))
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({k: round(v, 1) for k, v in ordered.items()}, indent=1) + "\n")
        tmp.replace(self.path)
