"""The layout of DESIGN §2, held by a test: imports run one way, and nothing imports in a circle.

Every module's imports are read with ``ast`` (module-level and function-level alike, so a lazy
import cannot hide a dependency). Three rules:

- nothing in ``workers/`` imports ``service/``;
- the engine's packages import downward only, in DESIGN's order: foundations → stats →
  eventlog, capture → parse → conversations → twilio → lifecycle → delivery → the jobs and
  processes at ``workers/``'s top (same-rank packages may not import each other);
- no circle of imports between modules, anywhere.

Imports under ``if TYPE_CHECKING:`` count too, for the direction and for circles: they never run,
but two modules that name each other's types are still one concern split in two (a
``typing.Protocol`` on the callee's side names what it needs instead).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Engine packages and their rank: a package may import a package of lower rank, never higher or equal.
RANKS = {"foundations": 0, "stats": 1, "eventlog": 2, "capture": 2, "parse": 3, "conversations": 4, "twilio": 5,
         "lifecycle": 6, "delivery": 7}
TOP = 8  # jobs.py, worker.py, scheduler.py and the one-release job aliases
# What may sit at workers/'s top: the runtime only; everything else lives in a package by stage.
RUNTIME = {"jobs", "worker", "scheduler", "jobs_lifecycle"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("workers", "service"):
        for path in (ROOT / top).rglob("*.py"):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an imported dotted name lands in (a submodule, else its package)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> list[tuple[str, int]]:
    """(imported project module, line) for each import in ``module``, typing-only ones included."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name)
                if target:
                    out.append((target, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                target = _resolve(f"{base}.{alias.name}") if alias.name != "*" else _resolve(base)
                if target:
                    out.append((target, node.lineno))
    return [(t, line) for t, line in out if t != module]


def _rank(module: str) -> tuple[str, int] | None:
    """(layer name, rank) of an engine module; None outside ``workers/``."""
    parts = module.split(".")
    if parts[0] != "workers" or len(parts) == 1:
        return None
    head = parts[1]
    if head in RANKS:
        return (head, RANKS[head])
    return ("top", TOP)


def test_workers_never_import_service() -> None:
    offences = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {target}"
                for m in MODULES if m.startswith("workers")
                for target, line in _imports(m) if target.startswith("service")]
    assert not offences, "workers/ must not import service/:\n" + "\n".join(offences)


def _direction_offences(edges: list[tuple[str, str, int]]) -> list[str]:
    """Each (module, imported module, line) that imports a package not below its own."""
    offences = []
    for module, target, line in edges:
        mine, theirs = _rank(module), _rank(target)
        if mine is None or theirs is None or theirs[0] == mine[0]:
            continue
        if theirs[1] >= mine[1]:
            where = MODULES[module].relative_to(ROOT) if module in MODULES else module
            offences.append(f"{where}:{line} imports {target} "
                            f"({theirs[0]} is not below {mine[0]} in DESIGN §2)")
    return offences


def test_engine_packages_import_downward_only() -> None:
    edges = [(m, target, line) for m in MODULES for target, line in _imports(m)]
    offences = _direction_offences(edges)
    assert not offences, "imports against the layout's direction:\n" + "\n".join(offences)


def _import_graph() -> dict[str, list[str]]:
    return {m: sorted({t for t, _ in _imports(m)}) for m in MODULES}


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    return found


def test_no_circle_of_imports() -> None:
    circles = _cycles(_import_graph())
    described = []
    for component in circles:
        members = set(component)
        edges = [f"  {MODULES[m].relative_to(ROOT)}:{line} imports {t}"
                 for m in component for t, line in _imports(m) if t in members]
        described.append(" ↔ ".join(component) + "\n" + "\n".join(edges))
    assert not circles, "modules importing each other:\n" + "\n".join(described)


def test_workers_top_holds_only_the_runtime() -> None:
    """A new module at workers/'s top is a foundation or a stage without its folder."""
    loose = sorted(path.stem for path in (ROOT / "workers").glob("*.py")
                   if path.stem != "__init__" and path.stem not in RUNTIME)
    packages = {path.parent.name for path in (ROOT / "workers").glob("*/__init__.py")}
    assert not loose, f"modules at workers/'s top that belong in a package: {loose}"
    assert packages == set(RANKS), f"packages without a rank in DESIGN's order: {packages ^ set(RANKS)}"


def test_the_checks_can_fail() -> None:
    """The rules see a real offence: a planted import is found and named."""
    assert _rank("workers.delivery.drain") == ("delivery", 7)
    assert _rank("workers.foundations.keys") == ("foundations", 0)
    assert _rank("workers.jobs") == ("top", TOP)
    assert _rank("workers.parse.voice")[1] < _rank("workers.conversations.store")[1]  # type: ignore[index]
    assert _resolve("workers.stats.field") == "workers.stats"
    assert _resolve("workers.parse.voice.parse_voice") == "workers.parse.voice"
    # the parse package's own imports reach its submodules, not itself
    targets = {t for t, _ in _imports("workers.parse")}
    assert {"workers.parse.voice", "workers.parse.messaging", "workers.parse.event"} <= targets
    # a planted circle is found, and only it
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert _cycles(graph) == [["a", "b", "c"]]
    # a planted upward import is named with its line
    planted = _direction_offences([("workers.parse.voice", "workers.delivery.drain", 7),
                                   ("workers.capture.index", "workers.eventlog.writer", 9),
                                   ("workers.delivery.drain", "workers.parse", 3)])
    assert planted == [
        "workers/parse/voice.py:7 imports workers.delivery.drain (delivery is not below parse in DESIGN §2)",
        "workers/capture/index.py:9 imports workers.eventlog.writer (eventlog is not below capture in DESIGN §2)",
    ]
