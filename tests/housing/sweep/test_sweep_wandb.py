"""The W&B side of the sweep: the W&B engine's runs and stops, and offline runs per trial.

W&B's cloud cannot be reached from these machines, so the sweep controller (``wandb.sweep``)
and the agent's heartbeat (which fetches runs and stop commands over GraphQL) never run here.
What does run is W&B's own agent from the installed wandb package: its job loop
(``Agent._run_jobs_from_queue`` -> ``_run_job``, which writes the run's config file and calls
the engine's trial function in a new thread) and its stop path (``Agent._stop_run`` ->
``_terminate_thread``: the thread is flagged, then a plain ``Exception`` is injected into it
with ``PyThreadState_SetAsyncExc``). The tests queue the jobs and issue the stops themselves,
exactly where the heartbeat would; runs are ``wandb.init(mode="disabled")``. Only the network
client the agent builds (``wandb.Api``, used by the heartbeat alone) is replaced.
"""

from __future__ import annotations

import threading
import time

import pytest
import wandb
from wandb.agents import pyagent

from housing.sweep import SweepRunError, parse_sweep_config, run_sweep
from housing.sweep.wandb_engine import AGENT_OPTIONS, AgentTrial, agent_stopped

CFG = {
    "method": "grid",
    "metric": {"name": "cv_rmse", "goal": "minimize"},
    "parameters": {"depth": {"values": [2, 3]}, "n_estimators": {"value": 10}},
}
SPEC = parse_sweep_config(CFG)
STOP_WAIT_S = 20.0


def _objective(params, reporter):
    for step in (1, 2):
        reporter.report(step, params["depth"] + 1.0 / step)
    return float(params["depth"])


class _Stoppable:
    """An objective that reports once, then works in Python until the agent stops it."""

    def __init__(self) -> None:
        self.reported = threading.Event()
        self.finished = False

    def __call__(self, params, reporter) -> float:
        reporter.report(1, 10.0 + params["depth"])
        self.reported.set()
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline:  # bytecode: where an async exception lands
            time.sleep(0.005)
        self.finished = True
        return 1.0


@pytest.fixture
def agent_env(tmp_path, monkeypatch):
    """Disabled runs, W&B files in tmp_path, and the agent's network client left out."""
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(tmp_path)
    # wandb.Api() authenticates against W&B's servers; only the heartbeat uses it.
    monkeypatch.setattr(wandb, "Api", lambda *args, **kwargs: None)
    yield
    wandb.teardown()


def _drive_agent(trial: AgentTrial, jobs: list[dict], stop: dict[str, threading.Event]):
    """Run ``jobs`` through W&B's agent; stop run ``id`` once ``stop[id]`` is set."""
    agent = pyagent.Agent("offline-sweep", function=trial, count=len(jobs), **AGENT_OPTIONS)
    agent._init()
    agent._sweep_id = "offline-sweep"  # set by _setup(), which registers with the server
    for job in jobs:
        agent._queue.put(pyagent.Job({"type": "run", "run_id": job["id"], "args": job["args"]}))
        agent._run_status[job["id"]] = pyagent.RunStatus.QUEUED

    def stopper(run_id: str, ready: threading.Event) -> None:
        if ready.wait(STOP_WAIT_S):
            agent._stop_run(run_id)  # what the heartbeat does on a "stop" command

    threads = [threading.Thread(target=stopper, args=item, daemon=True) for item in stop.items()]
    for thread in threads:
        thread.start()
    agent._run_jobs_from_queue()
    for thread in threads:
        thread.join(STOP_WAIT_S)
    return agent


def _args(depth: int) -> dict:
    return {"depth": {"value": depth}, "n_estimators": {"value": 10}}


def test_the_agent_flags_a_run_thread_before_injecting_a_plain_exception() -> None:
    """The contract the engine relies on, checked against the installed wandb."""
    seen: list[tuple[type, bool]] = []
    running = threading.Event()

    def work() -> None:
        try:
            running.set()
            deadline = time.monotonic() + STOP_WAIT_S
            while time.monotonic() < deadline:
                time.sleep(0.005)
        except BaseException as exc:
            seen.append((type(exc), agent_stopped()))

    thread = threading.Thread(target=work)
    thread.start()
    assert running.wait(STOP_WAIT_S)
    assert not agent_stopped(thread)
    pyagent._terminate_thread(thread)
    thread.join(STOP_WAIT_S)
    assert seen == [(Exception, True)]


def test_a_run_the_agent_stops_is_recorded_pruned(agent_env) -> None:
    objective = _Stoppable()
    trial = AgentTrial(SPEC, objective, mode="disabled")
    agent = _drive_agent(
        trial, [{"id": "run-a", "args": _args(3)}], stop={"run-a": objective.reported}
    )
    assert not objective.finished
    [record] = trial.records
    assert record.state == "pruned" and record.value is None and record.error is None
    assert record.params == {"depth": 3, "n_estimators": 10}  # read from the agent's config
    assert record.intermediate == [13.0]
    assert agent._run_status["run-a"] == pyagent.RunStatus.STOPPED
    assert agent._exceptions == {}  # the agent saw a clean stop, not an errored run
    assert trial.error is None


def test_stopped_and_complete_runs_make_one_result(agent_env) -> None:
    stoppable = _Stoppable()

    def objective(params, reporter):
        return stoppable(params, reporter) if params["depth"] == 3 else _objective(params, reporter)

    trial = AgentTrial(SPEC, objective, mode="disabled")
    jobs = [
        {"id": "run-a", "args": _args(2)},
        {"id": "run-b", "args": _args(3)},
        {"id": "run-c", "args": _args(4)},
    ]
    _drive_agent(trial, jobs, stop={"run-b": stoppable.reported})
    result = trial.result("offline-sweep")
    assert [r.state for r in result.trials] == ["complete", "pruned", "complete"]
    assert (result.n_complete, result.n_pruned, result.n_failed) == (2, 1, 0)
    assert result.best_params == {"depth": 2, "n_estimators": 10} and result.best_value == 2.0


def test_a_sweep_whose_every_run_is_stopped_says_so(agent_env) -> None:
    objective = _Stoppable()
    trial = AgentTrial(SPEC, objective, mode="disabled")
    _drive_agent(trial, [{"id": "run-a", "args": _args(2)}], stop={"run-a": objective.reported})
    with pytest.raises(SweepRunError, match=r"0 of 1 failed, 1 pruned"):
        trial.result("offline-sweep")


@pytest.mark.parametrize("error", [KeyError("deph"), Exception("a bug raising Exception")])
def test_an_objective_error_stops_the_agent_and_is_raised(agent_env, error) -> None:
    """Not a failed trial: even a plain ``Exception`` (the agent's type) is a bug unless stopped."""
    calls = []

    def objective(params, reporter):
        calls.append(params["depth"])
        raise error

    trial = AgentTrial(SPEC, objective, mode="disabled")
    jobs = [{"id": "run-a", "args": _args(2)}, {"id": "run-b", "args": _args(3)}]
    agent = _drive_agent(trial, jobs, stop={})
    assert calls == [2], "the first error stops the agent (max_consecutive_failed_runs=1)"
    assert trial.records == [] and trial.error is error
    assert agent._run_status["run-a"] == pyagent.RunStatus.ERRORED
    with pytest.raises(type(error)) as info:
        trial.result("offline-sweep")
    assert info.value is error


def test_a_non_finite_score_is_a_failed_trial_not_an_error(agent_env) -> None:
    trial = AgentTrial(SPEC, lambda params, reporter: float("nan"), mode="disabled")
    _drive_agent(trial, [{"id": "run-a", "args": _args(2)}], stop={})
    [record] = trial.records
    assert record.state == "failed" and record.error == "objective returned nan"
    assert trial.error is None


def test_wandb_engine_without_key_raises_one_line(monkeypatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with pytest.raises(SweepRunError) as info:
        run_sweep(SPEC, _objective, n_trials=2, seed=0, engine="wandb", wandb_mode="online")
    message = str(info.value)
    assert "WANDB_API_KEY" in message and "engine='optuna'" in message
    assert "\n" not in message


@pytest.mark.parametrize("mode", ["offline", "disabled"])
def test_wandb_engine_refuses_a_mode_other_than_online(monkeypatch, mode) -> None:
    """W&B's sweep controller is online: an offline sweep would silently go online."""
    monkeypatch.setenv("WANDB_API_KEY", "not-a-key")  # the mode is checked first
    with pytest.raises(SweepRunError) as info:
        run_sweep(SPEC, _objective, n_trials=2, seed=0, engine="wandb", wandb_mode=mode)
    message = str(info.value)
    assert f"got {mode!r}" in message and "wandb_mode='online'" in message
    assert "engine='optuna'" in message and "\n" not in message


@pytest.mark.slow
def test_offline_mode_writes_one_offline_run_per_trial(tmp_path, monkeypatch) -> None:
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.chdir(tmp_path)
    result = run_sweep(
        parse_sweep_config(CFG),
        _objective,
        n_trials=2,
        seed=0,
        wandb_mode="offline",
        show_progress=False,
    )
    assert result.n_complete == 2 and result.best_params == {"depth": 2, "n_estimators": 10}
    # The W&B service writes run logs asynchronously; teardown waits until it has flushed
    # them (what the stage's process exit does). Under load the file held only its header.
    import wandb

    wandb.teardown()
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    for run in runs:
        logs = list(run.glob("run-*.wandb"))
        assert logs, f"no run log in {run}"
        data = logs[0].read_bytes()
        # The protobuf log carries the group (sweep id), the config and the metric by name.
        assert result.sweep_id.encode() in data
        assert b"cv_rmse" in data and b"depth" in data and b"trial_state" in data
