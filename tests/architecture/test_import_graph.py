"""The import graph of ``src/tessera`` has no cycles, and the rings keep their direction.

Edges are read from the source (``imports.py``): module-level and function-local imports both
count (a function-local import only hides a cycle until the function runs), imports under
``if TYPE_CHECKING:`` do not (they never run). The handshake package has no function-local
imports at all. The dependency rules are DESIGN.md's.
"""

from __future__ import annotations

import pytest

from .imports import PACKAGE, cycles, graph

CORE = ("codec", "messages", "record", "crypto", "handshake", "session", "connection", "config",
        "events", "enums", "errors")  # fmt: skip
EDGES = ("io", "cli", "proxy", "fleet", "aio")


def _in(module: str, *parts: str) -> bool:
    return any(module == f"{PACKAGE}.{p}" or module.startswith(f"{PACKAGE}.{p}.") for p in parts)


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert found == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_handshake_has_no_function_local_imports() -> None:
    local = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for module, imps in graph().items()
        if _in(module, "handshake")
        for imp in imps
        if imp.local
    ]
    assert local == []


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        # session/ never imports handshake/ (the ClientHello summary belongs to resumption)
        (("session",), ("handshake",), ()),
        # states never import record/: they use the port
        (("handshake",), ("record",), ("handshake.port", "handshake.keys12")),
        # fleet/, observe/ and audit/ never import handshake/
        (("fleet", "observe", "audit"), ("handshake",), ()),
        # nothing in the core imports the edges
        (CORE, EDGES, ()),
    ],
)
def test_dependency_rules(
    importer: tuple[str, ...], imported: tuple[str, ...], allowed: tuple[str, ...]
) -> None:
    broken = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for module, imps in graph().items()
        if _in(module, *importer) and not _in(module, *allowed)
        for imp in imps
        if _in(imp.target, *imported)
    ]
    assert broken == []


def test_the_graph_is_read() -> None:
    """Not vacuous: known edges are found, TYPE_CHECKING ones are not."""
    g = graph()
    targets = {i.target for i in g[f"{PACKAGE}.connection"]}
    assert f"{PACKAGE}.handshake.server" in targets and f"{PACKAGE}.record.layer" in targets
    events = {i.target for i in g[f"{PACKAGE}.events"]}
    assert f"{PACKAGE}.session.model" not in events  # only under TYPE_CHECKING there
