"""A faster ``__init__`` for frozen, slotted dataclasses (the records a handshake makes).

A frozen dataclass's generated ``__init__`` stores each field with
``object.__setattr__(self, "name", value)``, which looks the name up through the class for every
field: a 14-field record costs 1.5 µs to make, against 0.2 µs unfrozen. A handshake makes 20 to
30 of them (the ClientHello and its extensions, the negotiated record, the decision, the
keys, the events). :func:`quick_init` gives such a class an ``__init__`` with the same
parameters (names, order, defaults, keyword-only ones) that stores each field through its
slot's own descriptor: 0.7 µs for 14 fields. The class stays frozen — an assignment after
construction still raises ``FrozenInstanceError`` — and equality, hashing, ``repr``,
``dataclasses.replace`` and pickling are the dataclass's own. A class this cannot reproduce
exactly (a ``__post_init__``, an ``InitVar``, a field left out of ``__init__`` or with a default
factory, no ``__slots__``) keeps its generated ``__init__``.
"""

from __future__ import annotations

import dataclasses
from types import FunctionType
from typing import TypeVar, cast

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Apply after ``@dataclass(frozen=True, slots=True)``; returns the class itself."""
    init = _quick_init(cls)
    if init is not None:
        init.__qualname__ = f"{cls.__qualname__}.__init__"
        setattr(cls, "__init__", init)  # noqa: B010 (mypy refuses assigning to a method)
    return cls


def _quick_init(cls: type) -> FunctionType | None:
    original = cls.__dict__.get("__init__")
    if not isinstance(original, FunctionType) or "__slots__" not in cls.__dict__:
        return None
    if original.__code__.co_filename != "<string>":
        return None  # the class's own __init__, not the one dataclasses generated
    if hasattr(cls, "__post_init__"):
        return None
    code = original.__code__
    fields = vars(dataclasses)["fields"](cls)  # typeshed's fields() wants a dataclass type
    names = code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount]
    if list(names) != [f.name for f in fields if f.init] or len(names) != len(fields):
        return None  # an InitVar or an init=False field: not reproduced here
    if any(f.default_factory is not dataclasses.MISSING for f in fields):
        return None
    positional = names[: code.co_argcount - 1]
    keyword = names[code.co_argcount - 1 :]
    params = ", ".join(("self", *positional, *(("*", *keyword) if keyword else ())))
    setters = {f"_set_{n}": getattr(cls, n).__set__ for n in names}
    body = "".join(f"  _set_{n}(self, {n})\n" for n in names) or "  pass\n"
    source = f"def _make({', '.join(setters)}):\n def __init__({params}):\n{body} return __init__\n"
    namespace: dict[str, object] = {}
    exec(source, namespace)  # noqa: S102 (our own source, as dataclasses builds __init__)
    init = cast(FunctionType, cast(FunctionType, namespace["_make"])(**setters))
    init.__defaults__ = original.__defaults__
    init.__kwdefaults__ = original.__kwdefaults__
    init.__annotations__ = original.__annotations__
    return init
