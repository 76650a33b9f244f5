"""The import graph of ``src/tessera``, read from the source with ``ast`` (nothing imported).

An edge A -> B means module A imports module B when it runs: at module level or inside a
function (a function-local import still ties the two modules together; it only hides the cycle
from the interpreter until the function runs). Imports under ``if TYPE_CHECKING:`` are left out:
they never run.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import tessera

ROOT = Path(tessera.__file__).resolve().parent
PACKAGE = "tessera"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module
    line: int
    local: bool  # inside a function


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(module: str, path: Path, known: set[str]) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:
                    visit_stmt(sub, local)
                continue
            visit_stmt(child, local)

    def visit_stmt(child: ast.AST, local: bool) -> None:
        inner = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        if isinstance(child, ast.Import):
            for alias in child.names:
                if alias.name.startswith(PACKAGE + ".") or alias.name == PACKAGE:
                    found.append(Import(module, alias.name, child.lineno, local))
        elif isinstance(child, ast.ImportFrom):
            base = _resolve(module, is_package, child.level, child.module)
            if not (base == PACKAGE or base.startswith(PACKAGE + ".")):
                return
            for alias in child.names:
                sub = f"{base}.{alias.name}"
                target = sub if sub in known else base
                found.append(Import(module, target, child.lineno, local))
        else:
            visit(child, inner)

    visit(tree, False)
    return [i for i in found if i.target in known and i.target != module]


def graph() -> dict[str, list[Import]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(m, p, known) for m, p in mods.items()}


def cycles(edges: dict[str, list[Import]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def strongconnect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for imp in edges.get(v, ()):
            w = imp.target
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(edges):
            if v not in index:
                strongconnect(v)
    finally:
        sys.setrecursionlimit(limit)
    return out
