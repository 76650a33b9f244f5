"""What every ``tessera`` command shares: its click classes (a single-valued option given twice
is a usage error, not a silent "the last one wins"), the exit codes, and errors in the user's
words (the option or the target, never a Python name or an ``[Errno N]``).

Exit codes, for every command:

====  ==========================================================================
0     done (``tessera check``: every check passed)
1     failed (a handshake, a check, a server that could not start...)
2     usage: an option, a config file or a missing extra (``pip install ...``)
3     a target could not be reached (refused, no such host, timed out)
130   interrupted (Ctrl-C)
====  ==========================================================================
"""

from __future__ import annotations

import errno
import math
import socket
from collections import Counter
from collections.abc import Sequence
from typing import cast

import click

from ..addresses import describe_os_error

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_CODES_HELP = (
    "Exit status: 0 done, 1 failed, 2 usage error (an option, a config file, a missing "
    "extra), 3 a target could not be reached, 130 interrupted."
)


class FiniteFloatRange(click.FloatRange):
    """A number in a range that is also finite: click's own range lets ``nan`` (which compares
    false with every bound) and ``inf`` through."""

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float:  # fmt: skip
        # (click's text or number; click 8.5's stubs say float, earlier ones Any)
        number = super().convert(cast("float", value), param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return float(number)


class Unreachable(click.ClickException):
    """A target could not be reached (exit status 3)."""

    exit_code = EXIT_UNREACHABLE


def option_name(param: click.Parameter) -> str:
    """How an error names ``param``: its first long option (``--backend``), else its first
    name (``-p``, or the argument's metavar)."""
    if isinstance(param, click.Option):
        names = [*param.opts, *param.secondary_opts]
        return next((n for n in names if n.startswith("--")), names[0])
    return param.human_readable_name


def refuse_repeats(command: click.Command, ctx: click.Context, args: Sequence[str]) -> None:
    """A usage error when an option that takes one value (or a flag) is given more than once:
    click keeps the last one silently, which hides a mistake in a long command line (two
    ``--backend``, ``--www`` and ``--echo``)."""
    parser = command.make_parser(ctx)
    try:
        _, _, order = parser.parse_args(args=list(args))
    except click.UsageError:
        return  # click says what is wrong with the command line itself
    counts = Counter(
        p for p in order if isinstance(p, click.Option) and not p.multiple and not p.count
    )
    for param, times in counts.items():
        if times > 1:
            if param.secondary_opts:  # --www/--echo: one of two
                what = f"{option_name(param)}/{param.secondary_opts[0]} are one choice"
            elif param.is_flag:
                what = f"{option_name(param)} is a flag"
            else:
                what = f"{option_name(param)} takes one value"
            raise click.UsageError(f"{what}, given {times} times: give it once", ctx)


def given_by_user(ctx: click.Context, name: str) -> bool:
    """Whether the parameter ``name`` was given on the command line or in a --config file
    (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source in (
        click.core.ParameterSource.COMMANDLINE,
        click.core.ParameterSource.DEFAULT_MAP,
    )


class Command(click.Command):
    """A ``tessera`` command: repeated single-valued options are usage errors."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:
            refuse_repeats(self, ctx, args)
        return super().parse_args(ctx, args)


class Group(click.Group):
    """A group whose own commands are :class:`Command` s."""

    command_class = Command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:
            refuse_repeats(self, ctx, args)  # (its parser stops at the subcommand's name)
        return super().parse_args(ctx, args)


# -- errors in words ------------------------------------------------------------------------

UNREACHABLE_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH}
)


def is_unreachable(error: OSError) -> bool:
    """Whether ``error`` says a target could not be reached (exit status 3)."""
    return (
        isinstance(error, socket.gaierror | TimeoutError | ConnectionRefusedError)
        or error.errno in UNREACHABLE_ERRNOS
    )


def target_error(target: str, error: OSError) -> click.ClickException:
    """``127.0.0.1:4433: connection refused``: exit status 3 when the target could not be
    reached, 1 for any other failure on the way."""
    message = f"{target}: {describe_os_error(error)}"
    return Unreachable(message) if is_unreachable(error) else click.ClickException(message)
