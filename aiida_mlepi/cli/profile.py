"""Find or create the AiiDA profile the command line works on (no external services needed)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
from aiida.manage.configuration import Profile, create_profile, get_config, load_profile

DEFAULT_PROFILE_NAME = "mlepi"


def missing_profile_message(name: str, config) -> str:
    """Why profile ``name`` cannot be used, with the profiles that do exist in ``config``."""
    existing = sorted(config.profile_names)
    if not existing:
        return (f"AiiDA profile '{name}' does not exist and there is no profile yet: "
                f"run without -p to create '{DEFAULT_PROFILE_NAME}'")
    hint = (f" (without -p the default profile '{config.default_profile_name}' is used)"
            if config.default_profile_name else " (choose one with -p NAME)")
    return f"AiiDA profile '{name}' does not exist; existing profiles: {', '.join(existing)}{hint}"


def load_existing_profile(name: str | None = None) -> Profile:
    """Load profile ``name`` (or the default one); a clear :class:`click.ClickException` if it does not exist."""
    config = get_config(create=True)
    wanted = name or config.default_profile_name
    if wanted is None or wanted not in config.profile_names:
        if not config.profile_names:
            raise click.ClickException("no AiiDA profile exists yet: run `aiida-mlepi run` or `aiida-mlepi demo` first")
        raise click.ClickException(missing_profile_message(wanted or DEFAULT_PROFILE_NAME, config))
    return load_profile(wanted, allow_switch=True)


def ensure_profile(name: str | None = None, echo: Callable[[str], None] = print,
                   interactive: bool | None = None) -> Profile:
    """Load profile ``name`` (or the default one); create the default ``core.sqlite_dos`` profile if there is none.

    Only the default profile ('mlepi') is created without asking, and only when no profile exists at all.
    An explicit ``name`` that does not exist is an error listing the existing profiles, unless
    ``interactive`` (default: standard input is a terminal), where the user is asked to confirm.

    A created profile uses AiiDA's built-in ZeroMQ broker, so that a daemon can be started later
    (``verdi -p NAME daemon start``) without RabbitMQ; ``run()``-style execution needs no broker running.
    """
    config = get_config(create=True)
    wanted = name or config.default_profile_name or DEFAULT_PROFILE_NAME
    if wanted in config.profile_names:
        return load_profile(wanted, allow_switch=True)
    first_default = wanted == DEFAULT_PROFILE_NAME and not config.profile_names
    if not first_default:
        if interactive is None:
            interactive = sys.stdin is not None and sys.stdin.isatty()
        message = missing_profile_message(wanted, config)
        if not interactive or not click.confirm(f"{message}.\nCreate a new profile '{wanted}'?", default=False):
            raise click.ClickException(message)
    from aiida.plugins import BrokerFactory

    echo(f"Creating AiiDA profile '{wanted}' (SQLite storage, built-in ZeroMQ broker) in {config.dirpath}")
    profile = create_profile(
        config,
        name=wanted,
        email="mlepi@localhost",
        storage_backend="core.sqlite_dos",
        storage_config={},
        broker_backend="core.zeromq",
        broker_config=BrokerFactory("core.zeromq").get_default_config(),
    )
    config.set_option("runner.poll.interval", 1, scope=profile.name)
    if config.default_profile_name is None:
        config.set_default_profile(profile.name)
    config.store()
    return load_profile(profile.name, allow_switch=True)
