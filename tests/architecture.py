"""The import graph of the package, read from the source (not a test module).

``python -m tests.architecture`` prints the layers with their line counts, the imports between
layers, and any import circle; ``tests/test_architecture.py`` asserts there is none. Every import
statement counts: module level, inside functions and under ``TYPE_CHECKING``. ``from a import b`` is
an import of the module ``a.b`` when that is a module, else of ``a``; a package's ``__init__`` is the
package's own module.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pyg_schnet"

#: The layers of pyproject.toml's import contract, lowest first, each a list of siblings.
LAYERS = [
    ["validation", "backend", "allocator"],
    ["graph", "nn"],
    ["models"],
    ["io"],
    ["datasets", "batching"],
    ["train", "simulation"],
    ["experiments"],
    ["cli"],
]


def modules(root: Path = PACKAGE) -> Dict[str, Path]:
    """Dotted module name -> file of every module of the package."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph(root: Path = PACKAGE) -> Dict[str, Set[str]]:
    """Module -> the package modules it imports (see the module docstring)."""
    known = modules(root)
    graph: Dict[str, Set[str]] = {name: set() for name in known}
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
            for target in targets:
                while target and target not in known:  # "import a.b.c" of a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer_of(module: str) -> str:
    """The top-level part of a module (``pyg_schnet.io.units`` -> ``io``; the root itself ``<root>``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def main() -> None:
    graph = import_graph()
    lines: Dict[str, int] = defaultdict(int)
    files: Dict[str, int] = defaultdict(int)
    for name, path in modules().items():
        lines[layer_of(name)] += len(path.read_text().splitlines())
        files[layer_of(name)] += 1
    print("layer lines (files), lowest first:")
    placed = {part for layer in LAYERS for part in layer}
    for layer in LAYERS:
        print("  " + " | ".join(f"{part} {lines[part]:,} ({files[part]})" for part in layer))
    others = sorted(set(lines) - placed)
    print(
        "  outside the layers (root, compatibility aliases): "
        + ", ".join(f"{o} {lines[o]:,} ({files[o]})" for o in others)
    )
    edges: Dict[tuple, int] = defaultdict(int)
    for src, targets in graph.items():
        for dst in targets:
            if layer_of(src) != layer_of(dst):
                edges[(layer_of(src), layer_of(dst))] += 1
    print("imports between top-level parts (count of module pairs):")
    for (src, dst), count in sorted(edges.items()):
        print(f"  {src} -> {dst}: {count}")
    found = cycles(graph)
    print("import circles:", found if found else "none")


if __name__ == "__main__":
    main()
