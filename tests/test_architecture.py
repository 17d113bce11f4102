"""The layers point down and the import graph has no cycle (read from the source with `ast`; nothing is imported).

Layers: the command line (`tokenomy.cli`, `tokenomy.commands`) and the demo sit on top; the domain packages
below them never import either; core types (`messages`, `errors`, `money`) import no domain package.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "tokenomy"
DOMAIN = ("pricing", "providers", "ledger", "resilience", "routing", "caching", "gateway", "batch", "bench",
          "planning", "analytics", "telemetry", "emulate", "data")
TOP = ("tokenomy.cli", "tokenomy.commands", "tokenomy.demo")


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the tokenomy modules it imports anywhere in its body (lazy and TYPE_CHECKING imports too)."""
    modules = {_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:  # `from pkg import module` imports the module
                    deps.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_domain_packages_never_import_the_command_line_or_the_demo() -> None:
    graph = import_graph()
    upward = sorted(f"{module} imports {dep}" for module, deps in graph.items() for dep in deps
                    if module.split(".")[1] in DOMAIN and any(dep == top or dep.startswith(top + ".") for top in TOP))
    assert upward == []


def test_core_types_import_no_domain_package() -> None:
    graph = import_graph()
    core = ["tokenomy.messages", "tokenomy.chat_response", "tokenomy.request_options", "tokenomy.request_views",
            "tokenomy.errors", "tokenomy.money"]
    assert all(m in graph for m in core)
    assert all(not any(d.split(".")[1] in DOMAIN for d in graph[m]) for m in core)


ARCHITECTURE = SRC.parent / "docs" / "architecture.md"


def test_the_architecture_page_names_every_module() -> None:
    """docs/architecture.md is the map of the code: a module added without a word there is missing from the map."""
    import re

    text = ARCHITECTURE.read_text()
    modules = sorted(p.relative_to(PACKAGE).with_suffix("") for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")
    unnamed = [str(m) for m in modules if not re.search(rf"(?<!\w){re.escape(m.name)}(?!\w)", text)]
    assert not unnamed, f"not named in docs/architecture.md: {unnamed}"


def test_the_files_the_architecture_page_names_exist() -> None:
    import re

    text = ARCHITECTURE.read_text()
    repo, files = SRC.parent, {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*") if p.is_file()}
    gone = []
    for named in set(re.findall(r"[\w/-]+\.(?:py|sh|js)\b", text)):
        if not ((repo / named).exists() or any(f == named or f.endswith("/" + named) for f in files)):
            gone.append(named)
    assert not gone, f"docs/architecture.md names files that do not exist: {sorted(gone)}"
