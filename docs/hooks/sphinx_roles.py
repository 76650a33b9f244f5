"""Griffe extension: the reStructuredText in tessera's docstrings reads well in the API reference.

The docstrings say ``:class:`~tessera.events.ConnectionInfo``` or ``:meth:`start_handshake```,
which mkdocstrings would show as raw text. Each becomes an inline code span: the last
component when the target starts with ``~`` (as Sphinx shows it), the target otherwise. A
literal block's ``::`` goes (the indented block after it is a Markdown code block already), as
Sphinx drops it, keeping one colon after a word.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|attr|exc|data|mod|obj):`(~?)([^`]+)`")


LITERAL_ALONE = re.compile(r"^[ \t]*::[ \t]*$", re.M)
LITERAL_AFTER_TEXT = re.compile(r"(\S)::[ \t]*$", re.M)


def as_code(match: re.Match[str]) -> str:
    target = match[2].removesuffix("()")
    return f"`{target.rsplit('.', 1)[-1] if match[1] else target}`"


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = ROLE.sub(as_code, obj.docstring.value)
            text = LITERAL_AFTER_TEXT.sub(r"\1:", LITERAL_ALONE.sub("", text))
            obj.docstring.value = text
