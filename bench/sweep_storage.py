"""Per-trial overhead of Optuna's storages: in-memory (baseline), journal file, PostgreSQL.

Each storage runs the same study of no-op trials (RandomSampler, one float parameter, an
objective returning a constant), so what is timed is the storage's work per trial (create
the trial, write its parameter, its value and its state; read back what the sampler asks for)
and nothing else. PostgreSQL is a throw-away cluster from Debian's package, started by this
script on a free 127.0.0.1 port in a temp dir (fsync and synchronous commit on: a real
server's settings), timed with and without Optuna's heartbeat (the mode that retries a killed
worker's trial). Each storage gets an untimed warm-up study, then ``--repeats`` timed ones;
the median is reported in ms per trial and as a ratio to in-memory measured in the same run.
Prints a table and writes JSON to bench/results/.

    python bench/sweep_storage.py [--trials 200] [--repeats 3] [--no-postgres] [--out PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna

ROOT = Path(__file__).resolve().parents[1]
WARMUP_TRIALS = 20
HEARTBEAT_INTERVAL_S = 60  # longer than any no-op trial: the heartbeat's fixed cost only
PG_START_TIMEOUT_S = 120


def machine() -> dict[str, Any]:
    """CPU model, core count and load, for reading the figures (a shared 2-core machine)."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    return {
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "optuna": optuna.__version__,
    }


def _filesystem(path: Path) -> str:
    """The journal's file system type (tmpfs and a disk differ by the cost of each append)."""
    done = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE", "--target", str(path)], capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


# -- a throw-away PostgreSQL cluster --------------------------------------------------------


def _pg_tool(name: str) -> str:
    for directory in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (directory / name).is_file():
            return str(directory / name)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"PostgreSQL's {name} not found: apt-get install -y postgresql")
    return found


def _as_postgres(cmd: list[str]) -> list[str]:
    """As root the cluster runs as the postgres user (initdb refuses root)."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_postgres(database: str = "optuna") -> Iterator[tuple[str, str]]:
    """A temporary cluster on 127.0.0.1 (trust auth); yields (SQLAlchemy URL, server version)."""
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, log, port = root / "data", root / "postgres.log", _free_port()
    ctl = _pg_tool("pg_ctl")
    run = dict(check=True, capture_output=True, timeout=PG_START_TIMEOUT_S)
    subprocess.run(
        _as_postgres([_pg_tool("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]), **run
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run(
        _as_postgres([ctl, "-D", str(data), "-o", opts, "-l", str(log), "-w", "start"]), **run
    )
    try:
        psql = [_pg_tool("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-qAt"]
        subprocess.run([*psql, "-c", f"CREATE DATABASE {database}"], **run)
        version = subprocess.run([*psql, "-c", "SHOW server_version"], text=True, **run)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}", version.stdout.strip()
    finally:
        subprocess.run(
            _as_postgres([ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
            check=False,
            capture_output=True,
            timeout=PG_START_TIMEOUT_S,
        )
        shutil.rmtree(root, ignore_errors=True)


# -- the measurement -----------------------------------------------------------------------


def _objective(trial: optuna.Trial) -> float:
    trial.suggest_float("x", 0.0, 1.0)
    return 0.0


def time_study(storage: Any, name: str, n_trials: int) -> float:
    """Seconds for ``n_trials`` no-op trials of a new study (study creation not included)."""
    study = optuna.create_study(
        study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    start = time.perf_counter()
    study.optimize(_objective, n_trials=n_trials)
    seconds = time.perf_counter() - start
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    assert len(finished) == n_trials, f"{name}: {len(finished)} of {n_trials} trials finished"
    return seconds


def measure(
    label: str, make_storage: Callable[[], Any], n_trials: int, repeats: int
) -> dict[str, Any]:
    """Median ms per trial over ``repeats`` studies, after an untimed warm-up study."""
    storage = make_storage()
    time_study(storage, f"{label}-warmup", WARMUP_TRIALS)
    runs = [1000 * time_study(storage, f"{label}-{i}", n_trials) / n_trials for i in range(repeats)]
    return {"ms_per_trial": statistics.median(runs), "runs_ms_per_trial": runs}


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": machine(),
        "n_trials": args.trials,
        "repeats": args.repeats,
        "storages": {},
    }
    storages = results["storages"]
    storages["in-memory"] = measure(
        "memory", optuna.storages.InMemoryStorage, args.trials, args.repeats
    )
    journal = workdir / "journal.log"
    storages["journal-file"] = measure(
        "journal",
        lambda: optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))
        ),
        args.trials,
        args.repeats,
    )
    results["journal_path"] = str(journal)
    results["journal_filesystem"] = _filesystem(workdir)
    if not args.no_postgres:
        with running_postgres() as (url, version):
            results["postgresql_version"] = version
            storages["postgresql"] = measure(
                "postgresql", lambda: optuna.storages.RDBStorage(url), args.trials, args.repeats
            )
            storages["postgresql-heartbeat"] = measure(
                "postgresql-heartbeat",
                lambda: optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_INTERVAL_S),
                args.trials,
                args.repeats,
            )
    baseline = storages["in-memory"]["ms_per_trial"]
    for entry in storages.values():
        entry["ratio_vs_in_memory"] = entry["ms_per_trial"] / baseline
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    return results


def table(results: dict[str, Any]) -> str:
    rows = [f"{'storage':22s} {'ms/trial':>9s} {'x in-memory':>12s}  runs (ms/trial)"]
    for name, entry in results["storages"].items():
        runs = ", ".join(f"{v:.3f}" for v in entry["runs_ms_per_trial"])
        rows.append(
            f"{name:22s} {entry['ms_per_trial']:9.3f} {entry['ratio_vs_in_memory']:12.1f}  {runs}"
        )
    m = results["machine"]
    rows.append(
        f"{results['n_trials']} no-op trials x {results['repeats']} (median); machine: "
        f"{m['cpu_model']}, {m['nproc']} CPUs, load {m['loadavg_at_start']} -> "
        f"{m['loadavg_at_end']}; journal on {results['journal_filesystem']}; "
        f"PostgreSQL {results.get('postgresql_version', 'not run')}"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200, help="no-op trials per study")
    parser.add_argument("--repeats", type=int, default=3, help="timed studies per storage")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the journal file goes (default: temp)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # heartbeat_interval is "experimental" in Optuna 5.0: measured on purpose, no warning.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-sweep-storage-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = run(args, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(table(results))
    out = args.out or ROOT / "bench" / "results" / f"sweep_storage-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
