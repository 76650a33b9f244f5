"""Griffe extension: Sphinx roles in tessera's docstrings read as code in the API reference.

The docstrings say ``:class:`~tessera.events.ConnectionInfo``` or ``:meth:`start_handshake```,
which mkdocstrings would show as raw text. Each becomes an inline code span: the last
component when the target starts with ``~`` (as Sphinx shows it), the target otherwise.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|attr|exc|data|mod|obj):`(~?)([^`]+)`")


def as_code(match: re.Match[str]) -> str:
    target = match[2].removesuffix("()")
    return f"`{target.rsplit('.', 1)[-1] if match[1] else target}`"


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(as_code, obj.docstring.value)
