"""The layers point down and the import graph has no cycle (read from the source with `ast`; nothing is imported).

Layers (docs/architecture.md's diagram), bottom up: core types; the base packages (providers, pricing, ledger, ...);
the config (tokenomy.yaml typed: `config.py` and its sections' `config_*.py`); the call path (`client.py` and
`routing/`, which read the config); the levers and services (gateway, batch, analytics, ...); the command line and
the demo. A module imports its own layer and those below it only.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "tokenomy"
# Bottom up; each name is a top-level module or package of tokenomy (`tokenomy.<name>...`).
LAYERS = (
    (
        "core types",
        (
            "messages",
            "chat_response",
            "request_options",
            "request_views",
            "errors",
            "money",
            "token_estimate",
            "ids",
            "yaml_text",
        ),
    ),
    ("base packages", ("pricing", "providers", "ledger", "resilience", "caching", "telemetry", "data")),
    ("config", ("config", "config_routing", "config_alerts", "config_gateway", "config_checks")),
    ("call path", ("client", "call_plan", "call_policy", "call_cost", "recording", "attempt_estimate", "routing")),
    ("levers and services", ("gateway", "batch", "bench", "planning", "analytics", "emulate")),
    ("command line and demo", ("__main__", "cli", "commands", "demo")),
)


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


LAYER_OF = {name: i for i, (_, names) in enumerate(LAYERS) for name in names}


def layer(module: str) -> int:
    """The index in LAYERS of `tokenomy.<name>...`; KeyError for a module no layer holds."""
    return LAYER_OF[module.split(".")[1]]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a module to a module in a higher layer, with both layers named."""
    modules = [m for m in graph if m != "tokenomy"]  # the package's __init__, in no layer (it imports nothing)
    return sorted(
        f"{module} ({LAYERS[layer(module)][0]}) imports {dep} ({LAYERS[layer(dep)][0]})"
        for module in modules
        for dep in graph[module]
        if layer(dep) > layer(module)
    )


def test_every_module_is_in_a_layer() -> None:
    """A new top-level module or package is placed in LAYERS (and on the diagram), so the next test judges it."""
    unplaced = sorted({m.split(".")[1] for m in import_graph() if m != "tokenomy"} - set(LAYER_OF))
    assert not unplaced, f"not in a layer of LAYERS: {unplaced}"


def test_imports_point_down_the_layers() -> None:
    """Core types import only core types; the config imports nothing that reads it (routing, analytics, the
    gateway); no package imports the command line or the demo."""
    graph = import_graph()
    assert graph["tokenomy"] == set()
    assert upward_imports(graph) == []


def test_upward_import_finder_finds_one() -> None:
    graph = {"tokenomy.config": {"tokenomy.analytics.alerts"}, "tokenomy.analytics.alerts": {"tokenomy.config"}}
    assert upward_imports(graph) == ["tokenomy.config (config) imports tokenomy.analytics.alerts (levers and services)"]


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
