"""Alembic plumbing shared by every service's migrations: the URL comes from the caller
(settings), never from an ini file."""

from __future__ import annotations

from pathlib import Path

from pension_shared.db import create_engine


def run_migrations(context) -> None:  # noqa: ANN001 - alembic's context module
    url = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migrations (set PENSION_DATABASE_URL)")
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def alembic_config(script_location: Path, url: str):  # noqa: ANN201 - alembic.config.Config, imported late
    """The Alembic configuration of a service's migrations against ``url``, for ``alembic.command``."""
    # Imported here, not at the top: every process imports this module, and only the one
    # that migrates needs alembic (about 0.9 s of start-up on a 2-core machine otherwise).
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["url"] = url
    return config


def upgrade(script_location: Path, url: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(script_location, url), "head")


def downgrade_before(script_location: Path, url: str, name: str) -> None:
    """Undo the migration named ``name`` (its file ``<revision>_<name>.py``) and every one after it."""
    from alembic import command
    from alembic.script import ScriptDirectory

    config = alembic_config(script_location, url)
    [revision] = [r for r in ScriptDirectory.from_config(config).walk_revisions()
                  if Path(r.path).stem.partition("_")[2] == name]
    command.downgrade(config, revision.down_revision or "base")
