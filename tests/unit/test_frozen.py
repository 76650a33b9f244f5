"""quick_init: the same constructor as the dataclass's, faster, and the record stays frozen."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import KW_ONLY, dataclass, field

import pytest

from tessera.events import ConnectionInfo
from tessera.frozen import quick_init
from tessera.handshake.negotiated import Negotiated12
from tessera.messages.hello import ClientHello


@dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: str = "x"
    _: KW_ONLY
    c: tuple[int, ...] = ()
    d: bytes = field(default=b"", repr=False)


@quick_init
@dataclass(frozen=True, slots=True)
class Quick:
    a: int
    b: str = "x"
    _: KW_ONLY
    c: tuple[int, ...] = ()
    d: bytes = field(default=b"", repr=False)


def _is_quick(cls: type) -> bool:
    init = vars(cls)["__init__"]
    return any(name.startswith("_set_") for name in init.__code__.co_freevars)


def test_same_parameters_and_values_as_the_dataclass() -> None:
    assert str(inspect.signature(Quick)) == str(inspect.signature(Plain))
    q = Quick(1, c=(2,), d=b"k")
    assert (q.a, q.b, q.c, q.d) == (1, "x", (2,), b"k")
    assert repr(q) == "Quick(a=1, b='x', c=(2,))"
    assert q == Quick(1, "x", c=(2,), d=b"k") and hash(q) == hash(Quick(1, c=(2,), d=b"k"))
    assert _is_quick(Quick)


def test_wrong_calls_fail_as_before() -> None:
    with pytest.raises(TypeError):
        Quick()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick(1, "x", (2,))  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick(1, e=3)  # type: ignore[call-arg]


def test_still_frozen_and_the_dataclass_tools_work() -> None:
    q = Quick(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.a = 2  # type: ignore[misc]
    assert dataclasses.replace(q, b="y") == Quick(1, "y")
    assert pickle.loads(pickle.dumps(q)) == q


def test_what_it_cannot_reproduce_keeps_its_own_init() -> None:
    @quick_init
    @dataclass(frozen=True, slots=True)
    class Factory:
        x: list[int] = field(default_factory=list)

    @quick_init
    @dataclass(frozen=True, slots=True)
    class Post:
        x: int

        def __post_init__(self) -> None:
            object.__setattr__(self, "x", self.x * 2)

    @quick_init
    @dataclass(frozen=True, slots=True)
    class OwnInit:
        x: int

        def __init__(self, y: int) -> None:
            object.__setattr__(self, "x", y + 1)

    assert Factory().x == [] and Factory().x is not Factory().x
    assert Post(2).x == 4
    assert OwnInit(1).x == 2
    assert not any(_is_quick(c) for c in (Factory, Post, OwnInit))


def test_the_hot_records_use_it() -> None:
    assert _is_quick(Negotiated12) and _is_quick(ConnectionInfo)
    assert not _is_quick(ClientHello)  # __post_init__ and a default factory: left alone
