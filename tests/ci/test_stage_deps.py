"""Each stage's code deps in dvc.yaml are exactly the repository modules it imports.

The import graph of ``python -m stages.<name>`` is computed statically (``ast``) over the
repository's own modules: every ``import``/``from … import`` anywhere in a module (a function
body too: it may run), each package ``__init__.py`` Python executes on the way, a submodule
named in ``from package import name``, and the imports of a package's PEP 562 ``__getattr__``
when it may be called (see ``_lazy_imports``). ``if TYPE_CHECKING:`` blocks never run.
Dynamic imports (``importlib``) are not seen: a slow-tier test checks the graph against the
modules Python loads. A missing dep lets ``dvc repro`` report "up to date" over outputs built
by other code; an extra one re-runs the stage for nothing. A directory dep covers the files
under it, and counts as extra unless the stage imports every module in it.

The model stages also depend on requirements/pipeline-libraries.txt, the pinned versions of
the libraries that compute their outputs (scripts/pipeline_libraries.py says which and why).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from ci_tools import REPO_ROOT
from dockerfile_support import instructions

from scripts.pipeline_libraries import AFFECTS_OUTPUTS, NO_EFFECT, normalize

# `python -m stages.<name>` from the repository root puts the root first on sys.path; the
# `housing` package is installed from src/ (editable).
SEARCH_PATH = (REPO_ROOT, REPO_ROOT / "src")
LIBRARIES = "requirements/pipeline-libraries.txt"
# Stages whose outputs no library version can change, and why.
LIBRARY_INDEPENDENT = {"download": "its output is pinned by params download.sha256"}


def stages() -> dict[str, dict]:
    return yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@functools.cache
def module_file(name: str) -> Path | None:
    """The file Python runs for the repository module ``name``; None for any other module."""
    head, *rest = name.split(".")
    for root in SEARCH_PATH:
        if (root / head / "__init__.py").is_file() or (root / f"{head}.py").is_file():
            base = root.joinpath(head, *rest)
            if (base / "__init__.py").is_file():
                return base / "__init__.py"
            return base.with_suffix(".py") if base.with_suffix(".py").is_file() else None
    return None


def module_name(path: Path) -> str:
    for root in SEARCH_PATH:
        if path.is_relative_to(root) and module_file(path.relative_to(root).parts[0]):
            parts = path.relative_to(root).with_suffix("").parts
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(f"{path} is not a repository module")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@dataclass
class ModuleImports:
    """What one module imports: (module, names taken from it) pairs, and its own bindings."""

    imports: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    lazy: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # in __getattr__
    binds: set[str] = field(default_factory=set)


def _walk(nodes: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node under ``nodes``, skipping ``if TYPE_CHECKING:`` bodies."""
    stack: list[ast.AST] = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(reversed(node.orelse))
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _import_from(node: ast.AST, package: str) -> tuple[str, tuple[str, ...]] | None:
    """(absolute module, names) of a ``from … import`` in ``package``; None for other nodes."""
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join([*base, node.module] if node.module else base)
        else:
            target = node.module or ""
        return target, tuple(alias.name for alias in node.names)
    return None


@functools.cache
def parse(path: Path) -> ModuleImports:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = ModuleImports()
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.binds.add(stmt.name)
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            out.binds |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            out.binds |= {(a.asname or a.name).split(".")[0] for a in stmt.names}
    lazy_nodes: set[int] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "__getattr__":
            for node in _walk(stmt.body):
                if (found := _import_from(node, package)) is not None:
                    out.lazy.append(found)
                    lazy_nodes.add(id(node))
    for node in _walk(tree.body):
        if id(node) in lazy_nodes:
            continue
        if isinstance(node, ast.Import):
            out.imports.extend((alias.name, ()) for alias in node.names)
        elif (found := _import_from(node, package)) is not None:
            out.imports.append(found)
    return out


def _executed(target: str, names: tuple[str, ...]) -> Iterator[str]:
    """Modules Python runs for ``from target import names`` (or ``import target``)."""
    parts = target.split(".")
    yield from (".".join(parts[:i]) for i in range(1, len(parts) + 1))
    yield from (f"{target}.{n}" for n in names if n != "*" and module_file(f"{target}.{n}"))


@dataclass(frozen=True)
class Graph:
    files: frozenset[Path]  # repository module files the stage runs
    external: frozenset[str]  # top-level names of the other modules they import


def _lazy_imports(target: str, names: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """The imports in PEP 562 ``__getattr__`` functions this import may call.

    ``from package import name`` calls the package's ``__getattr__`` for a name the package
    neither binds nor has as a submodule; a module bound whole (``import package``, or a
    submodule taken by ``from``) may have any attribute read later, so its own
    ``__getattr__`` counts too.
    """
    whole = [target] if not names else [f"{target}.{n}" for n in names]
    out = []
    for module in whole:
        path = module_file(module)
        if path is not None and path.name == "__init__.py":
            out.extend(parse(path).lazy)
    path = module_file(target)
    if names and path is not None and path.name == "__init__.py":
        package = parse(path)
        if any(n not in package.binds and not module_file(f"{target}.{n}") for n in names):
            out.extend(package.lazy)
    return out


@functools.cache
def import_graph(entry: str) -> Graph:
    """The transitive imports of the repository module ``entry`` (``stages.<name>``)."""
    files: set[Path] = set()
    external: set[str] = set()
    queue = list(_executed(entry, ()))
    while queue:
        name = queue.pop()
        path = module_file(name)
        if path is None:
            head = name.split(".")[0]
            assert module_file(head) is None, f"{name} is imported but no repository file"
            external.add(head)
            continue
        if path in files:
            continue
        files.add(path)
        for target, names in parse(path).imports:
            queue.extend(_executed(target, names))
            for lazy_target, lazy_names in _lazy_imports(target, names):
                queue.extend(_executed(lazy_target, lazy_names))
    return Graph(frozenset(files), frozenset(external))


# Modules a stage runs in child processes (`python -m ...`), which no import shows: the sweep
# stage's local workers. What they import computes the stage's outputs too.
CHILD_PROCESSES = {"sweep": ("housing.sweep.__main__",)}


def stage_graph(name: str, stage: dict) -> Graph:
    """The stage's import graph plus those of the modules it runs as child processes."""
    graphs = [import_graph(entry_module(name, stage))]
    graphs += [import_graph(child) for child in CHILD_PROCESSES.get(name, ())]
    return Graph(
        frozenset().union(*(g.files for g in graphs)),
        frozenset().union(*(g.external for g in graphs)),
    )


def dep_paths(stage: dict) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]


def code_deps(stage: dict) -> list[str]:
    """The deps of a stage that are source code: under stages/ or src/, or a .py file."""
    return [
        d for d in dep_paths(stage) if d.split("/")[0] in {"stages", "src"} or d.endswith(".py")
    ]


def covered(dep: str) -> set[Path]:
    """The module files a dep covers: the file, or every .py file under the directory."""
    path = REPO_ROOT / dep
    if path.is_dir():
        return {p for p in path.rglob("*.py") if "__pycache__" not in p.parts}
    return {path}


def rel(paths: set[Path]) -> list[str]:
    return sorted(p.relative_to(REPO_ROOT).as_posix() for p in paths)


def entry_module(name: str, stage: dict) -> str:
    cmd = stage["cmd"]
    assert cmd == f"python -m stages.{name}", f"stage {name!r}: cmd is {cmd!r}"
    return f"stages.{name}"


STAGES = stages()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_code_deps_are_the_stages_import_graph(name: str) -> None:
    stage = STAGES[name]
    graph = stage_graph(name, stage).files
    deps = code_deps(stage)
    missing = graph - set().union(*(covered(d) for d in deps))
    extra = {}
    for dep in deps:
        not_imported = covered(dep) - graph
        if not_imported:
            extra[dep] = rel(not_imported) if (REPO_ROOT / dep).is_dir() else []
    problems = []
    if missing:
        problems.append(f"imported but in no dep: {rel(missing)}")
    for dep, files in sorted(extra.items()):
        what = f" (the stage does not import {files})" if files else ""
        problems.append(f"dep {dep} is not imported{what}")
    assert not problems, f"stage {name!r} in dvc.yaml: " + "; ".join(problems)


def test_graph_follows_submodules_packages_and_lazy_attributes() -> None:
    """The resolver on this repository's own shapes, so a broken walker cannot pass vacuously."""
    graph = rel(set(import_graph("stages.sweep").files))
    # `python -m stages.sweep` runs stages/__init__.py; `from housing import stage` is a
    # submodule; `from housing.sweep import run_sweep` runs the package's __init__.
    for path in ("stages/__init__.py", "src/housing/__init__.py", "src/housing/stage.py"):
        assert path in graph
    assert "src/housing/sweep/__init__.py" in graph and "src/housing/sweep/engine.py" in graph
    # housing.serving loads its loader only through __getattr__, for names it does not bind.
    assert "src/housing/serving/loader.py" not in rel(set(import_graph("stages.split").files))
    assert {"numpy", "pandas"} <= import_graph("stages.split").external


def test_the_sweep_study_digest_hashes_the_objectives_code() -> None:
    """A shared study is named by the code its trials run (housing.sweep.inputs); a module
    the objective imports but the digest misses would let a worker with other code join."""
    from housing.sweep.inputs import OBJECTIVE_MODULES

    hashed = {module_file(m) for m in OBJECTIVE_MODULES}
    loop = {module_file("housing.sweep.inputs"), module_file("housing.sweep.worker")}
    needed = set(import_graph("housing.tuning").files) | loop
    assert not needed - hashed, f"add to OBJECTIVE_MODULES: {rel(needed - hashed)}"
    assert not hashed - needed, f"not run by the objective: {rel(hashed - needed)}"


@pytest.fixture
def tiny_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A throw-away repository layout (stages/, src/pkg/) the walker resolves instead."""
    files = {
        "stages/__init__.py": "",
        "stages/one.py": (
            "from typing import TYPE_CHECKING\n"
            "from pkg import sub, NAME, made_lazily\n"
            "import pkg.other.deep\n"
            "if TYPE_CHECKING:\n"
            "    from pkg import typing_only\n"
            "def main():\n"
            "    from pkg.inner import late\n"
        ),
        "stages/two.py": "from pkg import NAME\n",
        "src/pkg/__init__.py": (
            "NAME = 1\ndef __getattr__(name):\n    from pkg import lazy\n    return lazy\n"
        ),
        "src/pkg/sub.py": "from . import rel\n",
        "src/pkg/rel.py": "",
        "src/pkg/lazy.py": "",
        "src/pkg/typing_only.py": "",
        "src/pkg/unused.py": "",
        "src/pkg/inner.py": "from .other import deep\nlate = 1\n",
        "src/pkg/other/__init__.py": "",
        "src/pkg/other/deep.py": "import numpy\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    caches = (module_file, parse, import_graph)
    for cached in caches:
        cached.cache_clear()
    monkeypatch.setattr(sys.modules[__name__], "SEARCH_PATH", (tmp_path, tmp_path / "src"))
    yield tmp_path
    for cached in caches:
        cached.cache_clear()


def test_walker_on_every_import_shape(tiny_repo: Path) -> None:
    graph = import_graph("stages.one")
    assert sorted(p.relative_to(tiny_repo).as_posix() for p in graph.files) == [
        "src/pkg/__init__.py",
        "src/pkg/inner.py",  # imported in a function: it may run
        "src/pkg/lazy.py",  # made_lazily is not bound: pkg.__getattr__ imports it
        "src/pkg/other/__init__.py",
        "src/pkg/other/deep.py",
        "src/pkg/rel.py",  # relative import
        "src/pkg/sub.py",
        "stages/__init__.py",
        "stages/one.py",
    ]  # not typing_only (TYPE_CHECKING) nor unused
    assert graph.external == {"typing", "numpy"}
    # A bound name does not call __getattr__.
    two = import_graph("stages.two").files
    assert {p.name for p in two} == {"__init__.py", "two.py"} and len(two) == 3


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions_of(top_level: str) -> frozenset[str]:
    """The installed distributions that provide the top-level module ``top_level``."""
    return frozenset(normalize(d) for d in _distributions().get(top_level, []))


def library_stages() -> list[str]:
    """Stages whose import graph reaches a library that can change outputs."""
    out = []
    for name, stage in STAGES.items():
        external = stage_graph(name, stage).external
        dists = set().union(*(distributions_of(m) for m in external))
        if dists & set(AFFECTS_OUTPUTS) and name not in LIBRARY_INDEPENDENT:
            out.append(name)
    return sorted(out)


def test_model_stages_depend_on_the_pipeline_libraries() -> None:
    listing = {name: LIBRARIES in dep_paths(stage) for name, stage in STAGES.items()}
    model_stages = library_stages()
    assert set(model_stages) >= {"split", "preprocess", "featurize", "select", "sweep", "register"}
    missing = [name for name in model_stages if not listing[name]]
    assert not missing, f"stages computed by the libraries of {LIBRARIES} do not list it: {missing}"
    extra = [name for name in LIBRARY_INDEPENDENT if listing.get(name)]
    assert not extra, f"{extra} list {LIBRARIES} but no library version changes their outputs"


def test_every_library_the_pipeline_uses_is_classified() -> None:
    """A new third-party import in a stage, or a new dependency of a listed library, must be
    put in AFFECTS_OUTPUTS or NO_EFFECT (scripts/pipeline_libraries.py), with its reason."""
    classified = set(AFFECTS_OUTPUTS) | set(NO_EFFECT)
    assert not set(AFFECTS_OUTPUTS) & set(NO_EFFECT)
    unclassified: dict[str, set[str]] = {}
    for name, stage in STAGES.items():
        for module in stage_graph(name, stage).external:
            if module in sys.stdlib_module_names or module == "__future__":
                continue
            dists = distributions_of(module)
            assert dists, f"stage {name!r} imports {module!r}, which no installed package provides"
            for dist in dists - classified:
                unclassified.setdefault(dist, set()).add(f"imported by stage {name}")
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text(encoding="utf-8"))
    for package in lock["package"]:
        if package["name"] in AFFECTS_OUTPUTS:
            for dep in package.get("dependencies", []):
                if normalize(dep["name"]) not in classified:
                    unclassified.setdefault(normalize(dep["name"]), set()).add(
                        f"a dependency of {package['name']}"
                    )
    assert not unclassified, "classify in scripts/pipeline_libraries.py: " + "; ".join(
        f"{dist} ({', '.join(sorted(why))})" for dist, why in sorted(unclassified.items())
    )


def stage_outputs() -> set[str]:
    out = set()
    for stage in STAGES.values():
        for key in ("outs", "metrics", "plots"):
            out |= {e if isinstance(e, str) else next(iter(e)) for e in stage.get(key, [])}
    return out


def test_pipeline_image_holds_every_source_dep() -> None:
    """Every dep no stage produces (code, the library pins) is copied into the pipeline
    image, whose default command is ``dvc repro`` on that copy."""
    copied = []
    for keyword, args in instructions(REPO_ROOT / "Dockerfile"):
        words = [w for w in args.split() if not w.startswith("--")]
        if keyword == "COPY" and "--from=" not in args:
            copied += [w.rstrip("/") for w in words[:-1]]
    sources = {d for stage in STAGES.values() for d in dep_paths(stage)} - stage_outputs()
    missing = sorted(d for d in sources if not any(d == c or d.startswith(f"{c}/") for c in copied))
    assert not missing, f"dvc.yaml deps the pipeline image lacks: {missing}"


# Imports the stage module (its main() does not run) and lists the repository files loaded.
_LOADED = """
import importlib, json, sys
from pathlib import Path
sys.path.insert(0, ".")
importlib.import_module(sys.argv[1])
root = Path.cwd().resolve()
modules = list(sys.modules.values())
files = {Path(m.__file__).resolve() for m in modules if getattr(m, "__file__", None)}
ours = [str(f) for f in files if f.is_relative_to(root) and ".venv" not in f.parts]
sys.stdout.write(json.dumps(sorted(ours)))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STAGES))
def test_static_graph_holds_what_python_loads(name: str) -> None:
    """The walker checked against Python: every repository module that importing the stage
    loads is in its static graph (which adds the function-level imports on top)."""
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, f"stages.{name}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = {Path(p) for p in json.loads(done.stdout)}
    static = {p.resolve() for p in import_graph(f"stages.{name}").files}
    assert loaded, "nothing loaded: the check itself is broken"
    assert not loaded - static, (
        f"stage {name!r}: the walker missed {sorted(map(str, loaded - static))}"
    )
