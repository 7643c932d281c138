"""The layers stay apart: the source imports light, and never the application."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
HEAVY = ("click", "rich", "matplotlib", "pandas", "onepin_sim", "onepin_etl")


def test_importing_the_source_loads_no_application_module() -> None:
    code = ("import sys, onepin_source\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


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


def test_dlt_internals_are_imported_in_one_module_only() -> None:
    """dlt's undocumented modules are reached through onepin_source.dlt_internals alone."""
    internal = ("dlt.common.normalizers", "dlt.common.data_types", "dlt.common.schema.utils",
                "dlt.common.typing", "dlt.extract", "dlt.destinations.sql_jobs",
                "dlt.destinations.impl", "dlt.destinations.job_impl")
    offenders = []
    for package in ("onepin_source", "onepin_etl", "pipelines"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "dlt_internals.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and \
                        node.module.startswith(internal):
                    offenders.append(f"{package}/{path.name}: {node.module}")
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
