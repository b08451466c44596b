"""The import graph of src/duet has no circle, and no lower layer imports a higher one.

Every `import duet...` and `from duet... import` counts, including the ones inside functions
(which load lazily but still tie two modules together). A package's `__init__` is a node of
its own, and `from duet.x import y` is an import of the submodule `duet.x.y` when there is one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "duet"

# (lower, higher): nothing under `lower` imports anything under `higher`.
LAYERS = [
    ("duet.ui", "duet.cli"),  # `duet ui` launches the page; the page shares duet.generate_options
    ("duet.weights", "duet.codecs"),  # codecs read their files through duet.weights
    ("duet.weights", "duet.text"),
    ("duet.train", "duet.pipeline"),  # training and data never need the inference pipeline
    ("duet.data", "duet.pipeline"),
    ("duet.data", "duet.train"),  # curation shares config reading via duet.config_files
    ("duet.data", "duet.eval"),  # onsets live in duet.media, which both use
    ("duet.model", "duet.train"),  # the network knows nothing of how it is trained or run
    ("duet.model", "duet.sampling"),
    ("duet.model", "duet.pipeline"),
    ("duet.codecs", "duet.model"),
    ("duet.media", "duet.codecs"),
]


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _known(name: str, modules: set[str]) -> str | None:
    """The longest prefix of `name` that is a module of src/duet (None: not Duet's)."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) or None


def import_graph() -> dict[str, set[str]]:
    """{module: the Duet modules it imports}."""
    files = {_module(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1 packages
                    base = ".".join(package[:len(package) - node.level + 1] + [base] * bool(base))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                         for a in node.names]
            else:
                continue
            graph[mod] |= {t for t in (_known(n, set(files)) for n in names) if t and t != mod}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_checker_sees_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_duet_imports_itself_through_others():
    graph = import_graph()
    assert len(graph) > 100 and "duet.cli.parser" in graph["duet.cli"]
    found = circles(graph)
    detail = [[f"{a} -> {b}" for a in c for b in sorted(graph[a]) if b in c] for c in found]
    assert found == [], detail


@pytest.mark.parametrize("lower, higher", LAYERS)
def test_a_lower_layer_imports_no_higher_one(lower, higher):
    bad = sorted(f"{m} -> {t}" for m, targets in import_graph().items() if _under(m, lower)
                 for t in targets if _under(t, higher))
    assert bad == []
