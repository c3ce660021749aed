"""The command lines of the services' console commands: no flags, only --help.

Every setting is an environment variable (pydantic-settings), so a container, `make run`
and the tests configure a process one way. Arguments are parsed anyway, so that
`coordreg-registry --help` explains that and lists the variables instead of starting a
server.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from services.common.settings import SHARED_UNPREFIXED


def variables(settings: type[BaseSettings]) -> list[tuple[str, str]]:
    """(the environment variable(s) that set it, its default) for each field of `settings`."""
    prefix = settings.model_config.get("env_prefix", "")
    found: list[tuple[str, str]] = []
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names = [choice for choice in alias.choices if isinstance(choice, str)]
        elif isinstance(alias, str):
            names = [alias]
        else:
            names = [f"{prefix}{name}".upper()]
        found.append((" or ".join(names), _shown(field.get_default(call_default_factory=True))))
    return found


def _shown(default: object) -> str:
    if default is None or default == "":
        return "(empty)"
    # As the variable would be written: true/false, not Python's True/False.
    return str(default).lower() if isinstance(default, bool) else str(default)


def parse_no_arguments(argv: Sequence[str] | None, settings: type[BaseSettings], description: str) -> None:
    """Parses `argv` (only -h/--help is accepted); the help lists every variable of `settings`."""
    prefix = settings.model_config.get("env_prefix", "")
    width = max(len(names) for names, _ in variables(settings))
    epilog = "environment variables, with their defaults (see README.md, Configuration):\n" + "\n".join(
        f"  {names:<{width}}  {default}" for names, default in variables(settings)
    )
    shared = sorted(name.upper() for name in SHARED_UNPREFIXED & set(settings.model_fields))
    unprefixed = f" {' and '.join(shared)} without the prefix apply too." if shared else ""
    argparse.ArgumentParser(
        description=textwrap.fill(
            f"{description} Takes no options: it is configured by the environment variables "
            f"{prefix}* listed below.{unprefixed}",
            width=78,
        ),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
