"""The shape of the code, checked: no module of the packages over 600 lines, no function
over 80 lines unless it is a pure data table listed below with its reason, and the
import-linter contracts of pyproject.toml hold."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import import_graph, split

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "geo", "offers", "wallet")
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80

# "path.py:qualified.name" -> why it may be longer: pure data tables only.
LONG_FUNCTIONS_ALLOWED: dict[str, str] = {}


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, ast.AST]]:
    found: list[tuple[str, ast.AST]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                found.append((name, node))
            found += _functions(node, name + ".")
        else:
            found += _functions(node, prefix)
    return found


def test_no_module_is_over_600_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _sources()
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert long == {}, f"modules over {MAX_FILE_LINES} lines: {long}"


def test_no_function_is_over_80_lines_except_data_tables() -> None:
    long: dict[str, int] = {}
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        for name, node in _functions(ast.parse(path.read_text(), str(path))):
            assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            assert node.end_lineno is not None
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES and f"{rel}:{name}" not in LONG_FUNCTIONS_ALLOWED:
                long[f"{rel}:{name}"] = lines
    assert long == {}, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_allow_list_names_functions_that_exist() -> None:
    for key in LONG_FUNCTIONS_ALLOWED:
        rel, _, name = key.partition(":")
        names = {n for n, _ in _functions(ast.parse((ROOT / rel).read_text()))}
        assert name in names, f"{key} is allowed to be long but does not exist"


def test_the_import_contracts_hold() -> None:
    command = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(command).exists():
        pytest.skip("lint-imports (import-linter, in the dev extra) is not installed")
    out = subprocess.run(
        [command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_second_ci_pass_names_tests_that_exist() -> None:
    # A renamed file or test would silently leave the server pass.
    for key in {**split.SERVER, **split.SAMPLE}:
        rel, *names = key.split("::")
        assert (ROOT / rel).is_file(), key
        source = (ROOT / rel).read_text()
        for name in names:
            name = name.split("[")[0]
            assert f"def {name}(" in source or f"class {name}:" in source, key


def test_the_contributors_guide_shows_the_import_graph_the_code_has() -> None:
    # The Architecture section's drawing (gateway/README.md) is only true while this block is.
    guide = (ROOT / "gateway" / "README.md").read_text()
    assert "```\n" + import_graph.render() + "\n```" in guide, (
        "gateway/README.md's import graph is stale; paste `python -m tests.support.import_graph`"
    )


def test_gateway_imports_nothing_upward() -> None:
    # The same rule as the layers contract, read off the graph gateway/README.md shows.
    order = import_graph.ORDER
    upward = [(a, b) for a, b in import_graph.edges() if order.index(a) >= order.index(b)]
    assert upward == []
