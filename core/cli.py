"""Command lines generated from the config models (pydantic-settings' CLI), with ``--config FILE.yaml``.

A command is a `Command` model: its config's fields (each flag's help is the field's description,
``Literal`` fields are choices, booleans are ``--x/--no-x``), plus what only the command line needs, and
``run()`` returning the exit code. ``--config FILE`` reads a YAML file of the config's fields (a run's
stored ``config.yaml``, or ``training/configs/*.yaml``); flags given beside it override it, wherever
they stand. ``key=value`` is short for ``--key value`` (the grammar the training scripts had).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import ClassVar, TypeVar

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, CliApp, PydanticBaseSettingsSource, SettingsConfigDict

from core.config import Config, ConfigError, read_yaml, validated
from core.lifetime import exit_on_signals

C = TypeVar("C", bound=Config)
KEY_VALUE = re.compile(r"^([a-z][a-z0-9_]*)=(.*)$", re.S)

CLI_SETTINGS = SettingsConfigDict(
    cli_kebab_case=True,  # --shard-size, as users type it
    cli_implicit_flags=True,  # --strict / --no-strict
    cli_hide_none_type=True,
    cli_avoid_json=True,
    cli_enforce_required=True,
    cli_use_class_docs_for_groups=False,
)


class CommandFailed(Exception):
    """A user error a command reports in one line (exit 2), never with a traceback."""


class Command(BaseModel):
    """Mixed into a command's model: the entry point. ``run()`` returns the exit code; a `CommandFailed`
    or `ConfigError` is printed as one line (exit 2)."""

    def run(self) -> int:
        raise NotImplementedError

    def cli_cmd(self) -> None:
        try:
            code = self.run()
        except (CommandFailed, ConfigError) as e:
            print(f"error: {e}", file=sys.stderr)
            code = 2
        if code:
            raise SystemExit(code)


class ConfigCommand(Command):
    """A command whose fields are a config model's (``CONFIG``) plus command-line ones, with ``--config``."""

    CONFIG: ClassVar[type[Config]]

    config: Path | None = Field(None, description="a YAML file of this command's fields (e.g. a run's stored config.yaml); flags given too override it")

    def resolve(self, cls: type[C] | None = None) -> C:
        """The config: the ``--config`` file's fields, then the flags given on the command line."""
        cls = cls or self.CONFIG
        values = read_yaml(self.config) if self.config else {}
        given = {k: getattr(self, k) for k in self.model_fields_set if k in cls.model_fields}
        return validated(cls, {**values, **given}, source=str(self.config) if self.config else "command line")


class Group(BaseModel):
    """A command with subcommands (``gcot review serve``)."""

    def cli_cmd(self) -> None:
        CliApp.run_subcommand(self)


class Root(BaseSettings):
    """Base of a program's root model: subcommands only, read from the command line alone (no
    environment variables or dotenv files)."""

    model_config = CLI_SETTINGS

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    def cli_cmd(self) -> None:
        CliApp.run_subcommand(self)


def normalise(argv: list[str]) -> list[str]:
    """``key=value`` tokens become ``--key=value`` (underscores as dashes)."""
    out = []
    for a in argv:
        m = KEY_VALUE.match(a)
        out.append(f"--{m.group(1).replace('_', '-')}={m.group(2)}" if m else a)
    return out


def run(root: type[BaseSettings], argv: list[str] | None = None) -> int:
    """Parse ``argv`` into ``root``'s subcommand and run it; the exit code."""
    argv = normalise(list(sys.argv[1:] if argv is None else argv))
    return _run(root, argv)


def _run(model: type[BaseSettings], argv: list[str]) -> int:
    try:
        with exit_on_signals():  # SIGTERM/SIGHUP unwind like Ctrl-C: the servers a command started stop with it
            CliApp.run(model, cli_args=argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except ValidationError as e:  # a flag's value that its field refuses: one line a field
        for err in e.errors():
            print(f"error: --{'.'.join(str(x) for x in err['loc'][1:] or err['loc']).replace('_', '-')}: {err['msg']} (got {err.get('input')!r})", file=sys.stderr)
        return 2
    return 0


def single(command: type[Command], prog: str, argv: list[str] | None = None) -> int:
    """A program of one command (``python training/finetune.py``): ``command``'s flags at the top level."""
    argv = normalise(list(sys.argv[1:] if argv is None else argv))
    settings = type(f"{command.__name__}Cli", (command, Root), {"model_config": {**CLI_SETTINGS, "cli_prog_name": prog}})
    return _run(settings, argv)
