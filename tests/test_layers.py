"""The package's layering, checked statically (the source is parsed, nothing is imported): no import circle, lower
layers never import higher ones, vocoders are used through their contract, and modules stay a readable size.

What counts as an import (:func:`import_graph`): every ``import`` and ``from ... import`` of a module of the package,
at module level **and inside functions**. A function-local ("lazy") import does not fail at start-up, but it is a
dependency all the same: the one import circle this package had (``models`` -> ``models.prior`` -> ``checkpoint``
-> ``models``) was exactly such a lazy import, hidden from Python's import machinery and not from the layering.
Importing ``a.b.c`` also runs ``a/b/__init__.py``, so an import of a submodule is an edge to each package above it
that the importer is not itself inside. Left out: imports under ``if TYPE_CHECKING:`` (never run), and edges into the
root package ``audiovae/__init__.py``, which runs before any submodule can and imports nothing at module level (its
``load`` is resolved lazily; :func:`test_the_root_package_imports_nothing_at_module_level` keeps that true), so an
edge into it can never close a circle at import time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "audiovae"
MAX_LINES = 600
# being split into audiovae/commands/ (the front-door work): their size is checked there, not here yet
SIZE_EXEMPT = ("cli.py", "commands/")

# Lowest first. A unit (a top-level module, or a subpackage as a whole) imports units of its own layer only where the
# layer is "shared", else only its own modules and lower layers. A new top-level module or subpackage must be placed.
LAYERS: tuple[tuple[str, bool, frozenset[str]], ...] = (
    ("foundations", True, frozenset({"errors", "fileio", "features", "losses", "progress", "device", "threads",
                                     "trainable", "audio", "metrics", "plots", "data", "pitch",
                                     "machine_lines"})),
    ("models and vocoders (neither imports the other)", False, frozenset({"models", "vocoders"})),
    ("checkpoints", False, frozenset({"checkpoint"})),
    ("bundled files", False, frozenset({"pretrained"})),
    ("inference pipelines, vocoder choice", False, frozenset({"pipelines"})),
    ("training, its registry and run config", False, frozenset({"training"})),
    ("evaluation", False, frozenset({"evaluation"})),
    ("Python API, export", False, frozenset({"api", "export"})),
    ("entry points and compatibility re-exports", True, frozenset({"cli", "commands", "ui", "__main__", "config"})),
)


@dataclass(frozen=True)
class Edge:
    """Where one module imports another: the file, its line, and whether the import is inside a function."""

    path: str
    line: int
    local: bool

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" + (" (in a function)" if self.local else "")


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted name -> file of every module of the package at ``root`` (a package is its ``__init__.py``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, local: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under ``tree``, and whether it is inside a function; the body of an
    ``if TYPE_CHECKING:`` is skipped (its ``else`` is not)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for other in node.orelse:
                yield from _imports(ast.Module(body=[other], type_ignores=[]), local)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, local
        yield from _imports(node, local or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement may load (a ``from`` import's names may be submodules)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [prefix, *(f"{prefix}.{alias.name}" for alias in node.names)]


def import_graph(root: Path = PACKAGE) -> dict[str, dict[str, Edge]]:
    """``{module: {imported module: first place it is imported}}`` over the package at ``root`` (see the module
    docstring for what counts)."""
    mods = modules(root)
    graph: dict[str, dict[str, Edge]] = {m: {} for m in mods}
    for module, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, local in _imports(tree):
            for target in _targets(node, module, path.name == "__init__.py"):
                while target and target not in mods:  # `from pkg import name`: name is not always a module
                    target = target.rpartition(".")[0]
                parts = target.split(".")
                for i in range(2, len(parts) + 1):  # the target and each package above it, but not the root
                    entered = ".".join(parts[:i])
                    if entered in mods and not (module == entered or module.startswith(entered + ".")):
                        graph[module].setdefault(entered, Edge(str(path.relative_to(root.parent)), node.lineno,
                                                               local))
    return graph


def find_cycle(graph: dict[str, dict[str, Edge]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or None (depth-first, in sorted order so the answer is stable)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def describe(cycle: list[str], graph: dict[str, dict[str, Edge]]) -> str:
    return "\n".join(f"  {a} imports {b} at {graph[a][b]}" for a, b in zip(cycle, cycle[1:], strict=False))


def unit(module: str) -> str:
    """The layering unit of a module: its top-level module or subpackage under ``audiovae``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


# --------------------------------------------------------------------------------------------------- import circles
def test_the_package_has_no_import_circle():
    graph = import_graph()
    assert len(graph) > 50 and graph["audiovae.checkpoint"], "the graph should see the whole package"
    cycle = find_cycle(graph)
    assert cycle is None, "import circle " + " -> ".join(cycle) + ":\n" + describe(cycle, graph)


def test_the_root_package_imports_nothing_at_module_level():
    """Why edges into ``audiovae/__init__.py`` cannot close a circle (and are left out of the graph)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    eager = [node.lineno for node, local in _imports(tree) if not local
             and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")]
    assert eager == [], f"audiovae/__init__.py imports at module level (lines {eager}); keep its imports lazy"


def test_the_circle_finder_sees_lazy_and_package_imports(tmp_path):
    """The check is not vacuous: a circle closed by a function-local import, or through a package's
    ``__init__``, is found; one under ``TYPE_CHECKING`` is not an import."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .inner import thing\n")
    (pkg / "sub" / "inner.py").write_text("from ..base import helper\nthing = 1\n")
    (pkg / "base.py").write_text("def helper():\n    from .top import go\n    return go\n")
    (pkg / "top.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .base import helper\n"
                                "go = 1\n")
    graph = import_graph(pkg)
    assert find_cycle(graph) is None  # top -> base only under TYPE_CHECKING
    (pkg / "top.py").write_text("from .sub.inner import thing\ngo = 1\n")  # top -> pkg.sub (its __init__) too
    cycle = find_cycle(import_graph(pkg))
    assert cycle is not None and cycle[0] == cycle[-1] and {"pkg.base", "pkg.top"} <= set(cycle)
    assert "(in a function)" in describe(cycle, import_graph(pkg))


# ------------------------------------------------------------------------------------------------------------ layers
def test_lower_layers_do_not_import_higher_ones():
    rank = {name: (i, shared) for i, (_, shared, units) in enumerate(LAYERS) for name in units}
    graph = import_graph()
    unplaced = sorted({unit(m) for m in graph} - set(rank) - {"audiovae"})
    assert not unplaced, f"place {unplaced} in a layer of LAYERS (tests/test_layers.py) and docs/architecture.md"
    wrong = []
    for module, targets in graph.items():
        if module == "audiovae":
            continue
        here, shared = rank[unit(module)]
        for target, edge in targets.items():
            there = rank[unit(target)][0]
            if unit(target) != unit(module) and (there > here or (there == here and not shared)):
                wrong.append(f"{module} ({LAYERS[here][0]}) imports {target} ({LAYERS[there][0]}) at {edge}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


# ------------------------------------------------------------------------------------------------ vocoder contract
def concrete_vocoders() -> set[str]:
    """Names of the classes under ``audiovae/vocoders/`` that derive (directly or not) from ``Vocoder``."""
    bases: dict[str, set[str]] = {}
    for path in (PACKAGE / "vocoders").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases[node.name] = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
    found, grew = {"Vocoder"}, True
    while grew:
        new = {name for name, parents in bases.items() if parents & found} - found
        found |= new
        grew = bool(new)
    return found - {"Vocoder"}


def _class_names(node: ast.expr, aliases: dict[str, str]) -> Iterator[str]:
    """The class names an ``isinstance`` second argument (a name, an attribute, a tuple of them) refers to."""
    if isinstance(node, ast.Tuple):
        for element in node.elts:
            yield from _class_names(element, aliases)
    elif isinstance(node, ast.Name):
        yield aliases.get(node.id, node.id)
    elif isinstance(node, ast.Attribute):
        yield node.attr


def test_only_the_vocoders_package_tests_for_a_concrete_vocoder_class():
    """Outside ``audiovae/vocoders/`` a vocoder is used through the ``Vocoder`` contract (``vocoder_type``,
    ``network``, ``exportable``, ``settings()``): no ``isinstance``/``issubclass`` against ``NeuralVocoder``,
    ``GriffinLim`` or any other concrete class, nor ``type(v) is ...``."""
    concrete = concrete_vocoders()
    assert {"NeuralVocoder", "GriffinLim", "MelGriffinLim"} <= concrete
    wrong = []
    for module, path in modules().items():
        if unit(module) == "vocoders":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {a.asname: a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names
                   if a.asname}
        for node in ast.walk(tree):
            checked: list[ast.expr] = []
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 2 and \
                    node.func.id in ("isinstance", "issubclass"):
                checked.append(node.args[1])
            elif isinstance(node, ast.Compare) and any(isinstance(op, ast.Is | ast.IsNot | ast.Eq | ast.NotEq)
                                                       for op in node.ops):
                checked.extend([node.left, *node.comparators])
            names = {name for expr in checked for name in _class_names(expr, aliases)} & concrete
            if names:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} tests for {', '.join(sorted(names))}")
    assert not wrong, "use the Vocoder contract instead:\n" + "\n".join(wrong)


# ------------------------------------------------------------------------------------------------------------- size
def test_no_module_is_longer_than_600_lines():
    """Every module of the package but the CLI (``cli.py`` and ``commands/``), which is being split into
    ``audiovae/commands/`` and is left out of this check until that work is done (``SIZE_EXEMPT``)."""
    long = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if not relative.startswith(SIZE_EXEMPT) and lines > MAX_LINES:
            long[f"audiovae/{relative}"] = lines
    assert not long, f"modules over {MAX_LINES} lines (split them): {long}"
