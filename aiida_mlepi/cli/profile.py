"""Find or create the AiiDA profile the command line works on (no external services needed)."""

from __future__ import annotations

from aiida.manage.configuration import Profile, create_profile, get_config, load_profile

DEFAULT_PROFILE_NAME = "mlepi"


def ensure_profile(name: str | None = None, echo=print) -> Profile:
    """Load profile ``name`` (or the default one); create a ``core.sqlite_dos`` profile if there is none.

    A created profile uses AiiDA's built-in ZeroMQ broker, so that a daemon can be started later
    (``verdi -p NAME daemon start``) without RabbitMQ; ``run()``-style execution needs no broker running.
    """
    config = get_config(create=True)
    wanted = name or config.default_profile_name or DEFAULT_PROFILE_NAME
    if wanted in config.profile_names:
        return load_profile(wanted, allow_switch=True)
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
