from alembic import context

from pension_shared.migrations import run_migrations

run_migrations(context)
