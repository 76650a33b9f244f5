"""The optional parts of the ``tessera-tls`` distribution (its extras) and the one-line error a
feature gives when the package it needs is not installed.

A module that needs such a package imports it as usual, inside::

    try:
        import redis
    except ModuleNotFoundError as e:
        raise missing(e) from None

so that ``import tessera.fleet.redis_store`` without redis-py says which extra to install,
and the command line prints that one line instead of a traceback.
"""

from __future__ import annotations

DISTRIBUTION = "tessera-tls"

# the importable package -> (the extra, its name on the package index, what needs it)
EXTRAS: dict[str, tuple[str, str, str]] = {
    "redis": (
        "fleet",
        "redis",
        "the fleet (--redis, tessera keys sync/rotate/list, tessera.fleet)",
    ),
    "prometheus_client": ("metrics", "prometheus-client", "--metrics (Prometheus metrics)"),
}


class MissingExtra(ImportError):
    """A feature needs a package of one of the distribution's extras, and it is not installed;
    the message names the extra (``pip install 'tessera-tls[fleet]'``)."""

    def __init__(self, message: str, *, name: str, extra: str) -> None:
        super().__init__(message, name=name)
        self.extra = extra


def install_line(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def missing(error: ModuleNotFoundError) -> ImportError:
    """``error`` as a :class:`MissingExtra` when the module not found belongs to an extra;
    otherwise ``error`` itself (a module of tessera's own that is missing is a real bug)."""
    top = (error.name or "").partition(".")[0]
    entry = EXTRAS.get(top)
    if entry is None:
        return error
    extra, package, feature = entry
    return MissingExtra(
        f"{feature} needs the {package} package, which is not installed: {install_line(extra)}",
        name=top,
        extra=extra,
    )
