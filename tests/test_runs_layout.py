"""The run driver's shape, which a newcomer relies on: small modules, imports one way, every
websocket event built in one place, and a driver that never asks where an engine runs."""

import ast
import re
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "assistants_app"
RUNS = APP / "runs"
MODULES = sorted(RUNS.glob("*.py"))


def imported_siblings(path: Path) -> set[str]:
    """The modules of the runs package that `path` imports (`from . import x`, `from .x`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_each_module_reads_in_one_sitting(path):
    assert len(path.read_text().splitlines()) <= 400
    assert ast.get_docstring(ast.parse(path.read_text())), f"{path.name} says what it holds"


def test_the_package_imports_one_way():
    graph = {path.stem: imported_siblings(path) for path in MODULES if path.stem != "__init__"}
    done: set[str] = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, "import cycle: " + " -> ".join((*trail, module))
        if module in done:
            return
        for imported in graph.get(module, ()):
            visit(imported, (*trail, module))
        done.add(module)

    for module in graph:
        visit(module, ())


def test_the_driver_never_asks_where_an_engine_runs():
    for path in MODULES:
        assert not re.search(r"runs_here|executes_locally", path.read_text()), path.name


def test_every_websocket_event_is_built_in_events_py():
    # An event literal ({"type": "message.delta", ...}) anywhere else in the app is a second
    # place that defines the protocol.
    literal = re.compile(
        r"""["']type["']\s*:\s*["'](run\.|message\.|replay\.|heartbeat|error["']|part["'])"""
    )
    offenders = [
        str(path.relative_to(APP))
        for path in APP.rglob("*.py")
        if "simulator" not in path.parts
        and path not in (RUNS / "events.py", APP / "framing.py")  # framing.py: `part`
        and literal.search(path.read_text())
    ]
    assert offenders == []
