"""``tessera --help`` starts without importing the protocol stack (issue 14.9): the commands
and the public names of the package are imported on first use."""

from __future__ import annotations

import subprocess
import sys

import click

from tessera.cli.main import COMMANDS, cli

PROBE = """
import sys
from tessera.cli.main import main
sys.argv = ["tessera", "--help"]
try:
    main()
except SystemExit:
    pass
heavy = ["cryptography", "rich", "tessera.connection", "tessera.config", "tessera.cli.serve"]
print("LOADED", [m for m in heavy if m in sys.modules])
"""


def test_help_imports_no_protocol_module() -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "serve" in proc.stdout and "connect" in proc.stdout and "keys" in proc.stdout
    assert "LOADED []" in proc.stdout, proc.stdout


def test_listed_help_is_each_commands_own() -> None:
    ctx = click.Context(cli)
    for name, (_, _, short) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.help is not None
        assert command.help.splitlines()[0] == short, name


def test_package_names_load_on_use() -> None:
    import tessera

    assert "ClientConfig" in dir(tessera) and "VerifyProfile" in tessera.__all__
    assert tessera.ClientConfig.__name__ == "ClientConfig"
    try:
        tessera.NoSuchThing  # noqa: B018
    except AttributeError as e:
        assert "NoSuchThing" in str(e)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_every_public_name_is_listed() -> None:
    import tessera

    assert sorted(tessera.__all__) == sorted(tessera._WHERE)
    for name in tessera.__all__:
        assert getattr(tessera, name) is not None
