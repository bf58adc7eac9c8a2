"""The import graph of stream_app and agents: no circle, and no import hidden in a function to dodge one."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("stream_app", "agents")
#: Function-local imports allowed: the CLI loads only what the command run needs (Faust takes
#: a second to import; ``stream-app produce`` or ``--help`` should not wait for it).
LAZY_OK = {"stream_app.cli"}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imported(node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The project modules an import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        names = [base] + [f"{base}.{alias.name}" for alias in node.names]
    return {name for name in names if name in known}


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Module -> project modules imported at module level; and -> those imported in functions."""
    known = set(modules())
    top: dict[str, set[str]] = {}
    lazy: dict[str, set[str]] = {}
    for name, path in modules().items():
        tree = ast.parse(path.read_text(), str(path))
        top[name], lazy[name] = set(), set()
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                top[name] |= imported(node, known)
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(fn):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        lazy[name] |= imported(inner, known)
    return top, lazy


def test_no_module_imports_itself_through_others():
    top, _ = graph()
    circles = []

    def visit(name: str, path: list[str]) -> None:
        for dep in sorted(top[name]):
            if dep in path:
                circles.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in done:
                visit(dep, [*path, dep])
        done.add(name)

    done: set[str] = set()
    for name in sorted(top):
        visit(name, [name])
    assert circles == []


def test_project_imports_sit_at_module_level_but_in_the_cli():
    _, lazy = graph()
    hidden = {name: deps for name, deps in lazy.items() if deps and name not in LAZY_OK}
    assert hidden == {}


def test_agents_import_the_runtime_never_the_app():
    top, lazy = graph()
    for name in top:
        if name.startswith("agents"):
            assert "stream_app.app" not in top[name] | lazy[name], name
