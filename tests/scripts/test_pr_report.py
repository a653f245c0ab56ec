"""scripts/pr_report.py on a real temporary Git repository with two commits."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from readme_support import readme_argv

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "pr_report.py"

DVC_YAML = {
    "stages": {
        "sweep": {
            "cmd": "python -m stages.sweep",
            "params": ["sweep.n_trials", "sweep.seed"],
            "outs": ["models/best.json"],
        },
        "evaluate": {
            "cmd": "python -m stages.evaluate",
            "params": [{"extra.yaml": ["threshold"]}],
            "metrics": [{"reports/metrics.json": {"cache": False}}],
            "plots": [{"reports/plots/residuals.csv": {"cache": False}}],
        },
    },
    "plots": [{"actual_vs_predicted": {"y": {"reports/plots/pred.csv": "predicted"}}}],
}


def _load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pr_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pr_report"] = module
    spec.loader.exec_module(module)
    return module


pr_report = _load_module()


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def _write(repo: Path, path: str, text: str) -> None:
    file = repo / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text, encoding="utf-8")


def _state(repo: Path, *, n_trials: int, rmse: float, residuals: list[float]) -> None:
    _write(repo, "dvc.yaml", yaml.safe_dump(DVC_YAML, sort_keys=False))
    params = {"sweep": {"n_trials": n_trials, "seed": 42}, "split": {"test_size": 0.2}}
    _write(repo, "params.yaml", yaml.safe_dump(params))
    _write(repo, "extra.yaml", "threshold: 0.5\n")
    _write(repo, "reports/metrics.json", json.dumps({"test": {"rmse": rmse, "r2": 0.85}}))
    rows = "\n".join(f"{i},{r}" for i, r in enumerate(residuals))
    _write(repo, "reports/plots/residuals.csv", f"row,residual\n{rows}\n")
    _write(repo, "reports/plots/pred.csv", "actual,predicted\n1,1\n2,2\n")


@pytest.fixture
def two_commit_repo(tmp_path: Path) -> Path:
    """A repo whose second commit raises sweep.n_trials, lowers rmse and changes a plot."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _state(repo, n_trials=5, rmse=50000.0, residuals=[1.0, -1.0, 3.0])
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    _state(repo, n_trials=20, rmse=45000.0, residuals=[0.5, -0.5, 1.0, 2.0])
    _git(repo, "commit", "-q", "-am", "head")
    return repo


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--repo", str(repo), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _section_rows(markdown: str, heading: str) -> list[list[str]]:
    """Body rows of the first table after ``heading``, as lists of cell texts."""
    lines = markdown.splitlines()
    start = lines.index(heading)
    rows: list[list[str]] = []
    in_table = False
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            in_table = True
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif in_table:
            break
    return rows[2:]  # drop header and separator


def test_report_tables_between_two_commits(two_commit_repo: Path) -> None:
    done = _run(two_commit_repo, "--base", "HEAD~1", "--head", "HEAD")
    assert done.returncode == 0, done.stderr
    md = done.stdout

    assert _section_rows(md, "### Parameters") == [
        ["params.yaml", "sweep.n_trials", "5", "20"],
    ]
    metrics = _section_rows(md, "### Metrics")
    # Only what changed, like `dvc metrics diff`; --all lists the unchanged ones too.
    assert metrics == [["reports/metrics.json", "test.rmse", "50000", "45000", "-5000", "-10.00%"]]
    everything = _run(two_commit_repo, "--base", "HEAD~1", "--head", "HEAD", "--all").stdout
    every_metric = _section_rows(everything, "### Metrics")
    assert ["reports/metrics.json", "test.r2", "0.85", "0.85", "+0", "+0.00%"] in every_metric
    assert len(every_metric) == 2

    # The changed plot is summarised as text; the unchanged one is not listed.
    assert "#### `reports/plots/residuals.csv`" in md
    assert "Rows: 3 → 4." in md
    assert _section_rows(md, "#### `reports/plots/residuals.csv`") == [
        ["row", "1", "1.5", "+0.5"],
        ["residual", "1", "0.75", "-0.25"],
    ]
    assert "reports/plots/pred.csv" not in md
    assert "](http" not in md  # no image links: nothing depends on an image host


def test_working_tree_is_the_default_head(two_commit_repo: Path) -> None:
    _write(two_commit_repo, "extra.yaml", "threshold: 0.7\n")
    _write(two_commit_repo, "reports/plots/pred.csv", "actual,predicted\n1,2\n2,4\n")

    done = _run(two_commit_repo, "--base", "HEAD")

    assert done.returncode == 0, done.stderr
    assert "Base `HEAD` → head `workspace`." in done.stdout
    assert _section_rows(done.stdout, "### Parameters") == [
        ["extra.yaml", "threshold", "0.5", "0.7"],
    ]
    assert _section_rows(done.stdout, "#### `reports/plots/pred.csv`") == [
        ["actual", "1.5", "1.5", "+0"],
        ["predicted", "1.5", "3", "+1.5"],
    ]


def test_output_file_and_unknown_revision(two_commit_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    assert _run(two_commit_repo, "--base", "HEAD~1", "-o", str(out)).returncode == 0
    assert out.read_text(encoding="utf-8").startswith("## Pipeline report")

    bad = _run(two_commit_repo, "--base", "no-such-ref")
    assert bad.returncode == 2
    assert "unknown revision 'no-such-ref'" in bad.stderr
    assert bad.stdout == ""


def test_metric_added_on_head_and_zero_base() -> None:
    rows = pr_report.diff_metrics("m.json", {"a": 0.0, "b": 2.0}, {"a": 1.0, "b": 2.0, "c": 3})
    by_name = {row.name: row for row in rows}
    assert by_name["a"].delta == 1.0 and by_name["a"].pct is None  # no % of a zero base
    assert by_name["c"].base is None and by_name["c"].delta is None
    assert pr_report.fmt_pct(by_name["b"].pct) == "+0.00%"


def test_declared_files_reads_stage_and_top_level_entries() -> None:
    declared = pr_report.declared_files(DVC_YAML)
    assert declared == {
        "params": ["params.yaml", "extra.yaml"],
        "metrics": ["reports/metrics.json"],
        "plots": ["reports/plots/pred.csv", "reports/plots/residuals.csv"],
    }


def test_flatten_and_param_diff_cover_added_and_removed_keys() -> None:
    base = pr_report.flatten({"a": {"b": 1, "c": [1, 2]}, "d": {}})
    head = pr_report.flatten({"a": {"b": 1, "e": True}})
    assert base == {"a.b": 1, "a.c": [1, 2], "d": {}}
    changes = pr_report.diff_params("p.yaml", base, head)
    assert [(c.name, c.base, c.head) for c in changes] == [
        ("a.c", [1, 2], None),
        ("a.e", None, True),
        ("d", {}, None),
    ]
    assert pr_report.fmt([1, 2]) == "[1, 2]" and pr_report.fmt(None) == "—"


def test_list_files_names_what_the_report_reads(two_commit_repo: Path) -> None:
    (two_commit_repo / "extra.yaml").unlink()

    done = _run(two_commit_repo, "--list-files")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "dvc.yaml",
        "params.yaml",
        "reports/metrics.json",
        "reports/plots/pred.csv",
        "reports/plots/residuals.csv",
    ]
    assert _run(two_commit_repo).returncode == 2  # a report needs --base


def test_readme_command_reports_what_differs_from_main(two_commit_repo: Path) -> None:
    """The README's command as typed in a clone (the venv's ``python`` first on PATH), on a
    branch that raised sweep.n_trials: the branch's working tree against ``main``."""
    repo = two_commit_repo
    (repo / "scripts").mkdir()
    shutil.copy2(SCRIPT, repo / "scripts" / "pr_report.py")
    _git(repo, "checkout", "-q", "-b", "more-trials")
    _state(repo, n_trials=40, rmse=44000.0, residuals=[0.5, -0.5, 1.0, 2.0])
    _git(repo, "commit", "-q", "-am", "more trials")
    activated = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }

    done = subprocess.run(
        readme_argv("python scripts/pr_report.py"),
        cwd=repo,
        env=activated,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("## Pipeline report")
    assert "Base `main` → head `workspace`." in done.stdout
    assert _section_rows(done.stdout, "### Parameters") == [
        ["params.yaml", "sweep.n_trials", "20", "40"],
    ]
    assert _section_rows(done.stdout, "### Metrics") == [
        ["reports/metrics.json", "test.rmse", "45000", "44000", "-1000", "-2.22%"]
    ]


def test_collect_copies_the_report_files(two_commit_repo: Path, tmp_path: Path) -> None:
    """What CI's pipeline job uploads for the report job: the files --list-files names,
    copied under the same paths (`scripts/pr_report.py --collect ci-report-files`)."""
    listed = _run(two_commit_repo, "--list-files").stdout.splitlines()
    out = tmp_path / "ci-report-files"

    done = _run(two_commit_repo, "--collect", str(out))

    assert done.returncode == 0, done.stderr
    copied = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert copied == sorted(listed) and listed
    for path in listed:
        assert (out / path).read_bytes() == (two_commit_repo / path).read_bytes()


def test_make_report_writes_report_and_summary(two_commit_repo: Path, tmp_path: Path) -> None:
    """`make report BASE=...` as CI's report job runs it (its ``-o install``: the repository
    here is a two-commit stand-in, the test run's virtualenv stands for its own): report.md,
    and the same text appended to the job summary."""
    repo = two_commit_repo
    (repo / "scripts").mkdir()
    shutil.copy2(SCRIPT, repo / "scripts" / "pr_report.py")
    shutil.copy2(REPO_ROOT / "Makefile", repo / "Makefile")
    _git(repo, "checkout", "-q", "-b", "more-trials")
    _state(repo, n_trials=40, rmse=44000.0, residuals=[0.5, -0.5, 1.0, 2.0])
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier steps\n")

    done = subprocess.run(
        ["make", "-o", "install", "report", "BASE=main", f"BIN={Path(sys.executable).parent}"],
        cwd=repo,
        env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary)},
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    report = (repo / "report.md").read_text()
    assert report.startswith("## Pipeline report") and "Base `main`" in report
    assert "sweep.n_trials" in report
    assert summary.read_text() == "earlier steps\n" + report
