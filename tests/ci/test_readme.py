"""Every link of README.md (and docs/) resolves, and every README command has the one test
that proves it, a test that runs the README's own text (tests/readme_support.py).

A new command in a README code block fails here until PROVEN_BY names its test.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
from ci_tools import REPO_ROOT
from readme_support import README, anchors, commands, readme_command, relative_links

README_CURL = (
    "curl -s -X POST http://127.0.0.1:8000/api/v1/predict -H 'Content-Type: application/json' "
    """-d '{"instances": [{"longitude": -122.23, "latitude": 37.88, "housing_median_age": 41, """
    """"total_rooms": 880, "total_bedrooms": 129, "population": 322, "households": 126, """
    """"median_income": 8.3252, "ocean_proximity": "NEAR BAY"}]}'"""
)
FULL = "tests/pipeline/test_pipeline_full.py"
CI_RUN = ".ci/run"

# Each README command -> the one test that runs it as written (file::function), or .ci/run.
PROVEN_BY = {
    "make pipeline": (
        f"{FULL}::test_make_pipeline_reproduces_the_committed_lock_and_meets_the_target"
    ),
    "make test": CI_RUN,
    "dvc repro": "tests/pipeline/test_pipeline_repro.py::test_repro_again_runs_nothing",
    "dvc exp run --temp -n trials60 --set-param sweep.n_trials=60": (
        "tests/remote/test_remote_experiments.py::test_set_param_reruns_exactly_the_affected_stages"
    ),
    "dvc pull": (
        "tests/remote/test_remote_roundtrip.py::"
        "test_pull_in_a_fresh_clone_restores_every_output_exactly_and_make_serve_serves_it"
    ),
    "python scripts/pr_report.py --base main": (
        "tests/scripts/test_pr_report.py::test_readme_command_reports_what_differs_from_main"
    ),
    "make serve": f"{FULL}::test_make_serve_answers_the_readme_curl",
    README_CURL: f"{FULL}::test_make_serve_answers_the_readme_curl",
    "make monitor": f"{FULL}::test_make_serve_answers_the_readme_curl",
    "make test-fast": f"{FULL}::test_make_test_fast_selects_the_unit_tiers",
}
LOOKUPS = {"readme_command", "readme_argv"}
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_relative_links_reach_a_file_and_a_heading(doc: Path):
    broken = []
    for link in relative_links(doc):
        target = (doc.parent / link.path).resolve() if link.path else doc
        where = f"{doc.relative_to(REPO_ROOT)}:{link.line} ({link.target})"
        if not target.exists():
            broken.append(f"{where}: no such file")
        elif not target.is_relative_to(REPO_ROOT):
            broken.append(f"{where}: outside the repository")
        elif link.anchor and target.suffix == ".md" and link.anchor not in anchors(target):
            broken.append(f"{where}: no heading with that anchor in {target.name}")
    assert not broken, "\n".join(broken)


def test_the_readme_has_links_and_commands():
    """The parser finds what is there (an empty result would prove nothing above)."""
    assert len(relative_links(README)) >= 10
    assert {"make pipeline", "dvc repro", "dvc pull", "make serve"} <= set(commands())


def test_every_readme_command_names_the_one_test_that_proves_it():
    missing = [c for c in commands() if c not in PROVEN_BY]
    stale = [c for c in PROVEN_BY if c not in commands()]
    assert not missing, f"README commands without a proving test in PROVEN_BY: {missing}"
    assert not stale, f"PROVEN_BY names commands the README no longer shows: {stale}"


def _lookups(tree: ast.Module) -> set[str]:
    """The README commands a test module looks up (string arguments of readme_command/argv)."""
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        first = node.args[0]
        if name in LOOKUPS and isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.add(readme_command(first.value))
    return found


@pytest.mark.parametrize(
    ("command", "proof"),
    [pytest.param(c, p, id=" ".join(c.split()[:3])) for c, p in PROVEN_BY.items() if p != CI_RUN],
)
def test_each_proving_test_exists_and_runs_the_readme_text(command: str, proof: str):
    path, _, function = proof.partition("::")
    module = REPO_ROOT / path
    assert module.is_file(), f"{path} does not exist"
    tree = ast.parse(module.read_text(encoding="utf-8"))
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert function in functions, f"{path} has no test function {function}"
    imports = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "readme_support"
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name == "readme_support"
    }
    assert imports, f"{path} does not import readme_support"
    assert command in _lookups(tree), f"{path} never looks up {command!r} in the README"


def test_make_test_is_what_ci_runs():
    """`make test` is proven by `.ci/run`, which CI runs on a fresh clone: it runs the README's
    command as written (as its last phase, `phase tests make test`)."""
    words = shlex.split(readme_command("make test"))
    lines = (REPO_ROOT / CI_RUN).read_text(encoding="utf-8").splitlines()
    runs = [
        line
        for line in lines
        if not line.lstrip().startswith("#")
        and re.fullmatch(r"\s*(phase \S+ )?" + re.escape(shlex.join(words)) + r"\s*", line)
    ]
    assert runs, f"{CI_RUN} never runs `{shlex.join(words)}`"
