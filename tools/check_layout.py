"""Check the package layout: file and class sizes, and no import cycle.

    python tools/check_layout.py [--max-file-lines 600] [--max-class-lines 450]

Reads ``src/fervision`` with :mod:`ast` (nothing is imported).  An import cycle is a
strongly connected group of ``fervision.*`` modules that import one another, counting
imports inside functions too (a lazy import hides a cycle, it does not remove it).
Exits 1 and lists the problems when there are any.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fervision"


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """``fervision.x.y`` -> file, for every module of the package."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = ("fervision", *path.relative_to(package).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Return the ``fervision`` modules the module ``name`` imports (anywhere in it)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                       for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def problems(max_file_lines: int = 600, max_class_lines: int = 450,
             package: Path = PACKAGE) -> list[str]:
    found = []
    names = module_names(package)
    graph = {}
    for name, path in names.items():
        text = path.read_text()
        n_lines = len(text.splitlines())
        if n_lines > max_file_lines:
            found.append(f"{path.relative_to(package.parent)}: {n_lines} lines "
                         f"(> {max_file_lines})")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.ClassDef):
                size = node.end_lineno - node.lineno + 1
                if size > max_class_lines:
                    found.append(f"{name}.{node.name}: class of {size} lines "
                                 f"(> {max_class_lines})")
        graph[name] = imports_of(name, path, set(names))
    found += [f"import cycle: {' <-> '.join(group)}" for group in cycles(graph)]
    return found


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-file-lines", type=int, default=600)
    p.add_argument("--max-class-lines", type=int, default=450)
    args = p.parse_args(argv)
    found = problems(args.max_file_lines, args.max_class_lines)
    for line in found:
        print(line)
    if not found:
        print("layout OK: file and class sizes within limits, no import cycle")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
