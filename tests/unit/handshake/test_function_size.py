"""No function in the handshake state machines is longer than 60 lines (they read like the
RFC's flow only while each step stays small). ruff's PLR0915 bounds statements; this bounds
lines, docstrings included."""

from __future__ import annotations

import ast
from pathlib import Path

import tessera.handshake

MAX_LINES = 60


def test_handshake_functions_are_short() -> None:
    root = Path(tessera.handshake.__file__).parent
    long: list[str] = []
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.name}:{node.lineno} {node.name}() is {lines} lines")
    assert long == []
