"""No import circle among zstest's modules.

The graph is read from the source (ast), not from what Python happens to import: every import
counts, also one inside a function or under `if TYPE_CHECKING:`, because each is a dependency a
reader has to follow (junit <-> results was one only through a typing import). A circle is
reported as the modules in it and the edges that close it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "zstest"


def _module_names(package: Path) -> dict:
    """{dotted module name: file} for every .py file under the package."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _targets(module: str, is_package: bool, node: ast.AST, known: dict) -> set:
    """The zstest modules an import statement names (a submodule when `from pkg import sub`)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    here = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = here[:len(here) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    found = set()
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        found.add(sub if sub in known else target)
    return {name for name in found if name in known}


def import_graph(package: Path = PACKAGE) -> dict:
    """{module: set of zstest modules it imports}, self-imports left out."""
    known = _module_names(package)
    graph = {}
    for module, path in known.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps |= _targets(module, path.name == "__init__.py", node, known)
        graph[module] = deps - {module}
    return graph


def circles(graph: dict) -> list:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _describe(component: list, graph: dict) -> str:
    members = set(component)
    return "; ".join(f"{m} -> {', '.join(sorted(graph[m] & members))}" for m in component)


def test_the_finder_sees_a_circle_and_its_edges():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert circles(graph) == [["a", "b", "c"]]
    assert _describe(["a", "b", "c"], graph) == "a -> b; b -> c; c -> a"


def test_the_graph_counts_typing_and_function_level_imports(tmp_path):
    pkg = tmp_path / "zstest"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from .b import B\n")
    (pkg / "b.py").write_text("def f():\n    from .sub import c\n")
    (pkg / "sub" / "c.py").write_text("from .. import a\nimport zstest.b\n")
    graph = import_graph(pkg)
    assert graph["zstest.a"] == {"zstest.b"}
    assert graph["zstest.b"] == {"zstest.sub.c"}
    assert graph["zstest.sub.c"] == {"zstest.a", "zstest.b"}
    assert circles(graph) == [["zstest.a", "zstest.b", "zstest.sub.c"]]


def test_no_import_circle_among_zstest_modules():
    graph = import_graph()
    assert len(graph) > 50, "the package was not found"
    found = circles(graph)
    assert not found, "import circles: " + " | ".join(_describe(c, graph) for c in found)


def test_stages_never_import_the_cli():
    """The click side (zstest/cli.py, zstest/commands/) calls the stages, never the reverse."""
    graph = import_graph()
    cli = {m for m in graph if m == "zstest.cli" or m.startswith("zstest.commands")}
    upward = {m: sorted(graph[m] & cli) for m in graph if m not in cli and graph[m] & cli}
    assert not upward, f"stage modules importing the CLI: {upward}"
