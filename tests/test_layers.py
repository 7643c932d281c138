"""The layers stay apart: the source imports light, and never the application."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
HEAVY = ("click", "rich", "matplotlib", "pandas", "onepin_sim", "onepin_etl")


def loaded_by(module: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of ``candidates`` importing ``module`` loads, in a fresh interpreter."""
    code = f"import sys, {module}\nprint(sorted(m for m in {candidates!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    return list(ast.literal_eval(result.stdout.strip()))


def test_importing_the_source_loads_no_application_module() -> None:
    assert loaded_by("onepin_source", HEAVY) == []


def test_the_command_line_starts_without_dlt_duckdb_pandas_or_the_simulator_server() -> None:
    """``onepin-etl --help`` (and any command, until it runs) imports only what its flags need:
    each command imports the rest when it runs."""
    heavy = ("dlt", "duckdb", "pandas", "pyarrow", "matplotlib", "dagster", "onepin_sim.server")
    assert loaded_by("onepin_etl.cli", heavy) == []


def imported_packages(package: str) -> dict[str, set[str]]:
    """Top-level packages each module of ``package`` imports (at any depth of the module)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
        found[path.name] = names
    return found


def test_the_source_never_imports_the_application_or_the_simulator() -> None:
    offenders = {name: mods & {"onepin_etl", "onepin_sim", "click", "rich"}
                 for name, mods in imported_packages("onepin_source").items()}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_demo_and_cli_import_the_simulator() -> None:
    users = {name for name, mods in imported_packages("onepin_etl").items() if "onepin_sim" in mods}
    assert users == {"cli.py", "demo.py"}


# The fence modules, and the tests that check or crash dlt's internals on purpose.
DLT_FENCES = {"onepin_source/dlt_internals.py", "onepin_etl/dlt_internals.py",
              "tests/test_dlt_internals.py", "tests/crash_runner.py"}


def dlt_imports(tree: ast.AST) -> list[tuple[str, str | None]]:
    """``(module, name)`` of each ``dlt`` import (name None for ``import dlt.x``)."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and \
                node.module.split(".")[0] == "dlt":
            found.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names
                         if alias.name.split(".")[0] == "dlt")
    return found


def test_every_dlt_import_is_dlt_public_api_or_goes_through_a_fence() -> None:
    """dlt's documented names (``dlt_internals.PUBLIC_API``) anywhere; any other only in the
    fence modules, so a dlt upgrade is reviewed in one place per layer."""
    from onepin_source.dlt_internals import PUBLIC_API

    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith((".", "build/")) or "/." in relative or relative in DLT_FENCES:
            continue
        for module, name in dlt_imports(ast.parse(path.read_text(encoding="utf-8"))):
            allowed = PUBLIC_API.get(module, frozenset())
            if module not in PUBLIC_API or (name and allowed is not None
                                            and name not in allowed):
                offenders.append(f"{relative}: {module}{'.' + name if name else ''}")
    assert offenders == []


def test_no_file_refers_to_a_document_outside_the_repository() -> None:
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=ROOT,
                             check=True).stdout.split()
    outside = ("../shared", "design.md", "onepin-api.md", "platform-notes.md", "style.md")
    hits = [name for name in tracked
            if name.endswith((".py", ".md", ".toml", ".ipynb", ".cfg", "Makefile"))
            and name != "tests/test_layers.py"
            and any(ref in (ROOT / name).read_text(encoding="utf-8") for ref in outside)]
    assert hits == []


def calls_in(function: ast.AST) -> set[str]:
    """The names a function calls (``f(...)`` and ``x.f(...)`` both give ``f``)."""
    return {node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            for node in ast.walk(function) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)}


def test_dagster_assets_call_the_one_load_path() -> None:
    """The load assets run ``pipeline.load`` (as the CLI, ``onepin_etl.load`` and
    ``pipelines/`` do), never a pipeline of their own or dagster-dlt's ``run``."""
    tree = ast.parse((ROOT / "onepin_etl" / "dagster_defs.py").read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "onepin_etl.pipeline" for alias in node.names}
    assert imported == {"build_pipeline", "load"}  # build_pipeline: the assets' description
    body = next(node for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef) and node.name == "onepin_assets")
    calls = set().union(*(calls_in(statement) for statement in body.body))  # not the decorator
    assert "load" in calls
    assert calls & {"run", "run_load", "build_pipeline", "pipeline", "create_views",
                             "pipeline_lock"} == set()
    for path in ("onepin_etl/cli.py", "onepin_etl/__init__.py", "pipelines/onepin_pipeline.py"):
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        assert any(isinstance(node, ast.ImportFrom) and node.module in ("onepin_etl",
                   "onepin_etl.pipeline") and "load" in {a.name for a in node.names}
                   for node in ast.walk(tree)), path


KIND_NAMES = {"duckdb", "parquet", "ducklake", "postgres", "filesystem"}


def _names_a_destination(node: ast.expr) -> bool:
    """A destination's name (``"duckdb"``, a tuple of names) or a variable holding one."""
    if isinstance(node, ast.Constant):
        return node.value in KIND_NAMES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_names_a_destination(e) for e in node.elts)
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return name in ("destination", "destination_type", "destination_name")


def test_no_destination_name_is_compared_outside_the_destinations_package() -> None:
    """Code that needs to know the kind of a destination asks ``target.kind``
    (:mod:`onepin_etl.destinations`); adding a kind touches that package only."""
    offenders = []
    for package in ("onepin_etl", "pipelines"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "destinations" in path.relative_to(ROOT).parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Compare) and any(
                        _names_a_destination(side) for side in (node.left, *node.comparators)):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []



STATE_ACCESS = {"resource_state", "source_state", "reset_resource_state",
                "delete_source_state_keys"}


def _touches_the_state(node: ast.AST) -> bool:
    """``dlt.current.resource_state(...)`` and the like, ``state["sources"]``,
    ``state.get("sources")``."""
    if isinstance(node, ast.Attribute):
        return node.attr in STATE_ACCESS
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "sources"
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
        node.func.attr == "get" and bool(node.args) and \
        isinstance(node.args[0], ast.Constant) and node.args[0].value == "sources"


def test_only_the_state_module_touches_the_sources_state() -> None:
    """The incremental state has one owner (``onepin_source/state.py``): no other module asks
    dlt for a source's or resource's state, or digs into ``pipeline.state["sources"]``."""
    offenders: list[str] = []
    for package in ("onepin_source", "onepin_etl", "pipelines", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative == "onepin_source/state.py":
                continue
            offenders.extend(f"{relative}:{node.lineno}"  # type: ignore[attr-defined]
                             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                             if _touches_the_state(node))
    assert offenders == []
