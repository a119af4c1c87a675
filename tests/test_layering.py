"""The package graph has no cycles, no layer imports one above it, and the pure core stays pure:
`sql` is a leaf, and the decision (`sql`, `rules`, `auth`'s identity, `shape`) imports no
aiohttp, Redis or clock-bound I/O. The product imports none of the tools that test it (the
Electric imitation, tests, benchmarks, the demo); the imitation uses the product's model of
Electric's where (`gateway.sql`) and nothing else of it, so it stays a stand-in for Electric, not
a second gateway.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = ROOT / "gateway"
IMITATION = ROOT / "electric_imitation"
TEST_TOOLS = ("electric_imitation", "tests", "bench", "deploy")
# Modules of the pure core: request + identity + rules -> upstream request or refusal.
PURE: tuple[str, ...] = ("sql", "rules/model.py", "rules/load.py", "auth/identity.py", "shape")
# Rule tests and the access diff are pure too, except what reads a database on request
# (psycopg): the row proof and the schema check.
PURE += tuple(
    f"rulesops/{path.name}"
    for path in sorted((GATEWAY / "rulesops").glob("*.py"))
    if path.name not in ("proof.py", "schema.py")
)
IO_MODULES = ("aiohttp", "redis", "asyncio", "socket", "psycopg")
# The house, top floor first: a package (or root module) imports only from its own floor or
# the floors below. A new package or root module goes on a floor here, or this test fails.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__", "cli"),  # the commands
    ("server",),  # serving: the socket, connections, workers, the loop; runs the app
    ("web",),  # the app: setups, the pipeline's stages, the routes
    # the concerns, and the one owner of the hot path's decisions
    ("audit", "revocation", "limits", "upstream", "rulesops", "settings", "streams", "decisions"),
    ("shape", "auth", "rules", "sql"),  # the decision: request + identity + rules
    ("redis",),  # Redis's forms, clients, batching and keys
    ("errors", "cache", "tasks", "outages", "metrics", "logs", "log_sink"),  # no one concern's
)
FLOOR = {unit: floor for floor, units in enumerate(LAYERS) for unit in units}


def _unit(path: Path) -> str:
    """The package (or top-level module) a file belongs to: `gateway/shape/plan.py` -> shape."""
    parts = path.relative_to(GATEWAY).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in GATEWAY.rglob("*.py"):
        unit = _unit(path)
        for name in _imports(path):
            if name.startswith("gateway."):
                target = name.split(".")[1]
                if target != unit:
                    graph[unit].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            found = visit(target)
            if found:
                return found
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start)
        if found:
            return found
    return None


def test_gateway_packages_import_each_other_without_a_cycle() -> None:
    assert _cycle(_graph()) is None


def test_every_package_and_root_module_has_a_floor() -> None:
    units = {_unit(path) for path in GATEWAY.rglob("*.py")} - {"__init__"}
    assert sorted(units - FLOOR.keys()) == []


def test_no_package_imports_one_on_a_floor_above_it() -> None:
    upward = [
        f"{unit} (floor {FLOOR[unit]}) imports {target} (floor {FLOOR[target]})"
        for unit, targets in sorted(_graph().items())
        for target in sorted(targets)
        if unit in FLOOR and target in FLOOR and FLOOR[target] < FLOOR[unit]
    ]
    assert upward == []


def test_sql_is_a_leaf_package() -> None:
    assert _graph().get("sql", set()) == set()


def test_cycle_detection_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("part", PURE)
def test_pure_core_does_no_io(part: str) -> None:
    files = [GATEWAY / part] if part.endswith(".py") else sorted((GATEWAY / part).rglob("*.py"))
    for path in files:
        io = {n for n in _imports(path) if n.split(".")[0] in IO_MODULES}
        assert not io, f"{path.relative_to(GATEWAY)} imports {sorted(io)}"


def test_the_product_imports_none_of_the_tools_that_test_it() -> None:
    for path in sorted(GATEWAY.rglob("*.py")):
        tools = {n for n in _imports(path) if n.split(".")[0] in TEST_TOOLS}
        assert not tools, f"{path.relative_to(ROOT)} imports {sorted(tools)}"


def test_the_imitation_takes_only_the_sql_model_from_the_product_and_nothing_from_tests() -> None:
    for path in sorted(IMITATION.rglob("*.py")):
        if path.relative_to(IMITATION).parts[0] == "tests":  # its tests share tests/' services
            continue
        names = _imports(path)
        product = {
            n for n in names if n.split(".")[0] == "gateway" and not n.startswith("gateway.sql")
        }
        tests = {n for n in names if n.split(".")[0] == "tests"}
        assert not product | tests, f"{path.relative_to(ROOT)} imports {sorted(product | tests)}"
