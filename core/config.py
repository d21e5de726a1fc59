"""One config per command, defined once: a pydantic model with a description on every field.

The same model is the CLI (generated from it by `core.cli`), the Prefect flow's one parameter (Prefect
renders its fields, descriptions and ``Literal`` choices in the run form), and what run folders and data
cards store as resolved YAML, which ``--config FILE`` takes back.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from core.guard import OutputGuard

C = TypeVar("C", bound="Config")

# Where a build's shard tasks run (gcot/flows/runners.py turns the choice into a Prefect task runner).
Runner = Literal["threads", "processes", "dask", "ray"]
PLACEMENT = ("runner", "dask_address", "workers")  # where a build's tasks run: never part of what it released


class ConfigError(ValueError):
    """A config file or value that does not fit its command's model: the file, the field and why."""


class Config(BaseModel):
    """Base of every command's config: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True, validate_assignment=True)

    def to_yaml(self, header: str | None = None, exclude: tuple[str, ...] = (), **replace: Any) -> str:
        """The resolved config as YAML (field order as declared) without the ``exclude`` fields, ``replace``
        applied, after a ``# header``."""
        return yaml_text({**self.model_dump(mode="json", exclude=set(exclude)), **replace}, header)

    @classmethod
    def from_yaml(cls: type[C], path: str | Path, **overrides: Any) -> C:
        """The YAML file's fields, then ``overrides``; a bad file or field is a `ConfigError` naming it."""
        values = read_yaml(path)
        return validated(cls, {**values, **overrides}, source=str(path))

    def command_line(self, prog: str, positional: tuple[str, ...] = ()) -> str:
        """The shortest command that gives this config: ``prog`` then every field that differs from its
        default as a flag (``positional`` fields by value, in order)."""
        parts = prog.split() + [str(getattr(self, name)) for name in positional]
        for name, field in type(self).model_fields.items():
            if name in positional:
                continue
            value = getattr(self, name)
            default = field.get_default(call_default_factory=True)
            if value == default:
                continue
            flag = "--" + (field.alias or name).replace("_", "-")
            if isinstance(value, bool):
                parts.append(flag if value else flag.replace("--", "--no-", 1))
            elif isinstance(value, dict | list | tuple):
                import json

                parts += [flag, json.dumps(list(value) if isinstance(value, tuple) else value, separators=(",", ":"))]
            else:
                parts += [flag, str(value)]
        return shlex.join(parts)


def yaml_text(data: dict, header: str | None = None) -> str:
    """``data`` as YAML in its own key order, after a ``# header`` line."""
    return (f"# {header}\n" if header else "") + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    try:
        values = yaml.safe_load(p.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{p}: a config file holds a mapping of field: value, not a {type(values).__name__}")
    return values


def validated(cls: type[C], values: dict, source: str = "config") -> C:
    try:
        return cls.model_validate(values)
    except ValidationError as e:
        lines = [f"{source}: {'.'.join(str(x) for x in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors()]
        known = ", ".join(cls.model_fields)
        raise ConfigError("\n".join(lines) + f"\n(fields of {cls.__name__}: {known})") from None


class BuildConfigBase(Config):
    """What every build's config shares (gcot build, gcot build-longv): ``out``, ``overwrite``, ``work_dir``
    and the placement fields, what a release keeps of the config, and the guard on where it goes.
    Subclasses set ``PROG`` (the command), ``OUT_PREFIX`` (the folder name of a run given no ``out``) and
    ``KIND`` (the release's name in the guard's messages), and say their ``inputs()``."""

    PROG: ClassVar[str]
    OUT_PREFIX: ClassVar[str]
    KIND: ClassVar[str]  # what `core.guard` calls the release in its messages and marker
    # Subclasses declare `out: str | None` and `work_dir: str | None` where they belong in their field
    # order (a field declared here would come first in --help, the run form and config.yaml).

    def work_path(self) -> Path:
        return Path(self.work_dir) if self.work_dir else Path(self.out).resolve().parent / ".gcot-work"

    def with_out(self: C, run_name: str | None = None) -> C:
        """This config with ``out`` filled in: a new folder named after the run (a flow run's name, else
        the time), so that a run given no ``out`` never writes over a release."""
        if self.out:
            return self
        import time

        return self.model_copy(update={"out": f"releases/{run_name or time.strftime(self.OUT_PREFIX + '-%Y%m%d-%H%M%S')}"})

    def released(self) -> dict:
        """What a release keeps of its config: the folder by its name, and none of the fields that say where
        the work ran (work folder, runner, cluster, workers: the bytes do not depend on them) or whether it
        might replace a release (a stored ``overwrite: true`` would replace one silently on a rebuild)."""
        data = self.model_dump(mode="json", exclude={"work_dir", "overwrite", *PLACEMENT})
        return {**data, "out": Path(self.out).name}

    def stored(self) -> str:
        """The config.yaml a release keeps (`released`); ``--config`` takes it back."""
        return yaml_text(self.released(), f"{self.PROG} --config {Path(self.out).name}/config.yaml")

    def release_command(self) -> str:
        """The exact command of what was released (no placement flags)."""
        return type(self)(**self.released()).command_line(self.PROG)

    def inputs(self) -> list[tuple[str, Path]]:
        """What the build reads, as (role, path): the release may not be, hold or lie inside any of them."""
        raise NotImplementedError

    def output_guard(self, *more_inputs: tuple[str, str | Path]) -> OutputGuard:
        """Where the release may go (`core.guard`): ``out``, checked against the inputs."""
        return OutputGuard(self.out, self.KIND, [*self.inputs(), *more_inputs], overwrite=self.overwrite)

    def check_output(self) -> None:
        """Before any work: the release may be written to ``out``, and the work folder lies neither inside
        an input nor inside ``out``; an `OutputRefused` says why not."""
        guard = self.output_guard()
        guard.check()
        guard.check_work_dir(self.work_path())
