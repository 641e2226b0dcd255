"""The packages of app/ import each other in one direction only: core at the bottom, the domains
above it, main on top, in the order LAYERS declares. Read from the source with ast (imports inside
functions included), so it also holds for code no test runs.

Imports under `if TYPE_CHECKING:` are left out: they name a type for the checker and import
nothing when the app runs.
"""

import ast
import itertools
from collections import defaultdict
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"

# The packages of app/ (and its modules directly in app/), bottom to top: each may import only
# those below it. The one place the order is declared (docs/architecture.md explains it); a new
# package is added here where it belongs.
LAYERS = [
    "core",  # settings, database, errors, security: imports nothing of Parley's
    "mail",
    "users",  # the user table, which every domain refers to
    "audit",  # the audit log: every domain above records its events through audit.record()
    "auth",
    "accounts",
    "groups",  # groups: restricted models, group quotas (usage), shared collections (knowledge)
    "usage",
    "keys",  # API keys: their table, the key check, the keys endpoints
    "files",
    "guardrails",
    "knowledge",
    "tools",  # tools the model may call: MCP servers, the built-in knowledge search
    "prompts",  # the prompt library: saved prompts with {{variables}}
    "projects",  # folders of chats: instructions, model, collections, tools
    "chats",
    "sharing",  # a chat's public read-only link, and continuing it
    "generation",
    "openai_api",  # the OpenAI-compatible /v1 surface, on top of generation
    "health",
    "web",
    "runtime",  # app/runtime.py: the long-lived objects, built on every domain's parts
    "cli",  # app/cli.py
    "models",  # app/models.py: every table, for alembic
    "main",  # app/main.py: create_app() wires everything
]

# Imports against LAYERS known when this test was written, each removed by work in progress:
# (importing package, imported package). Empty: keep it so, and delete an entry once its import
# is gone (the test says so).
KNOWN_UPWARD_IMPORTS: set[tuple[str, str]] = set()

# Cycles known when this test was written, each removed by work in progress; delete an entry
# when its cycle is gone (the test says so).
KNOWN_CYCLES: set[frozenset[str]] = set()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_modules(tree: ast.Module) -> list[tuple[str, int]]:
    """(module, line) of every import that runs, leaving out `if TYPE_CHECKING:` blocks."""
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            type_only.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
    return found


def package_of(path: Path) -> str:
    """app/<package>/... -> <package>; a module directly in app/ is its own package."""
    parts = path.relative_to(APP).with_suffix("").parts
    return parts[0]


def import_graph() -> dict[str, dict[str, str]]:
    """package -> {imported package: "file:line" of one import that makes the edge}."""
    graph: dict[str, dict[str, str]] = defaultdict(dict)
    for path in sorted(APP.rglob("*.py")):
        source = package_of(path)
        for module, line in _imported_modules(ast.parse(path.read_text(), str(path))):
            parts = module.split(".")
            if parts[0] != "app" or len(parts) < 2:
                continue
            target = parts[1]
            if target != source:
                where = f"{path.relative_to(APP.parent)}:{line}"
                graph[source].setdefault(target, where)
    return graph


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """Every elementary cycle, once each, as [a, b, ..., a] starting at its smallest name."""
    found: set[tuple[str, ...]] = set()

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in graph.get(node, {}):
            if nxt == start:
                found.add(tuple(path))
            elif nxt not in path and nxt > start:
                walk(start, nxt, [*path, nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return [[*cycle, cycle[0]] for cycle in sorted(found)]


def describe(cycle: list[str], graph: dict[str, dict[str, str]]) -> str:
    steps = [f"{a} -> {b} ({graph[a][b]})" for a, b in itertools.pairwise(cycle)]
    return " -> ".join(cycle) + ":\n    " + "\n    ".join(steps)


def test_no_import_cycle_between_packages() -> None:
    graph = import_graph()
    new = [cycle for cycle in cycles(graph) if frozenset(cycle) not in KNOWN_CYCLES]
    assert not new, "import cycles between app packages:\n" + "\n".join(
        describe(cycle, graph) for cycle in new
    )


def test_known_cycles_still_exist() -> None:
    present = {frozenset(cycle) for cycle in cycles(import_graph())}
    gone = [sorted(cycle) for cycle in KNOWN_CYCLES if cycle not in present]
    assert not gone, f"these cycles are gone: delete them from KNOWN_CYCLES: {gone}"


def test_core_imports_no_other_package() -> None:
    above = import_graph().get("core", {})
    assert not above, "app/core must import no package above it: " + ", ".join(
        f"{package} ({where})" for package, where in sorted(above.items())
    )


def test_the_graph_is_read() -> None:
    # Guards the reader itself: edges everyone can see in the source must be found.
    graph = import_graph()
    assert "core" in graph["generation"] and "chats" in graph["generation"]
    assert "generation" in graph["main"]


def upward_imports(graph: dict[str, dict[str, str]]) -> dict[tuple[str, str], str]:
    """(package, imported package) -> where, for every import of a package at or above it."""
    rank = {name: index for index, name in enumerate(LAYERS)}
    return {
        (source, target): where
        for source, targets in graph.items()
        for target, where in targets.items()
        if source in rank and target in rank and rank[target] >= rank[source]
    }


def test_every_package_has_a_layer() -> None:
    packages = {package_of(path) for path in APP.rglob("*.py")} - {"__init__"}
    missing = sorted(packages - set(LAYERS))
    assert not missing, f"declare these packages' place in LAYERS: {missing}"
    gone = sorted(set(LAYERS) - packages)
    assert not gone, f"these packages are gone: delete them from LAYERS: {gone}"


def test_no_package_imports_one_above_it() -> None:
    upward = upward_imports(import_graph())
    new = {edge: where for edge, where in upward.items() if edge not in KNOWN_UPWARD_IMPORTS}
    assert not new, "imports against the layer order (LAYERS, bottom to top):\n" + "\n".join(
        f"    {source} imports {target} ({where})"
        for (source, target), where in sorted(new.items())
    )


def test_known_upward_imports_still_exist() -> None:
    gone = sorted(KNOWN_UPWARD_IMPORTS - set(upward_imports(import_graph())))
    assert not gone, f"these imports are gone: delete them from KNOWN_UPWARD_IMPORTS: {gone}"


def test_an_upward_import_is_found() -> None:
    # Guards the check itself: core importing a domain is reported with its file and line.
    graph = {"core": {"chats": "app/core/x.py:1"}, "chats": {"core": "app/chats/y.py:2"}}
    assert upward_imports(graph) == {("core", "chats"): "app/core/x.py:1"}
