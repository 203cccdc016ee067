"""Reading a whole table fast, for the work that goes through every event (rebuilding read
models, verifying the chains): plain tuples in large batches from one snapshot, without a
SQLAlchemy row object per event."""

from __future__ import annotations

import uuid
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def batches_of_rows(conn: Connection, statement: sa.Select, batch_size: int) -> Iterator[list[tuple]]:
    """The statement's rows, ``batch_size`` at a time, in the connection's transaction: through a
    server-side cursor of the driver on PostgreSQL, through SQLAlchemy elsewhere."""
    if conn.dialect.name == "postgresql":
        compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        if not conn.in_transaction():
            conn.begin()
        with conn.connection.driver_connection.cursor(name=f"pension_read_{uuid.uuid4().hex[:12]}") as cursor:
            cursor.itersize = batch_size
            cursor.execute(str(compiled), compiled.params or None)
            while rows := cursor.fetchmany(batch_size):
                yield rows
        return
    result = conn.execute(statement.execution_options(stream_results=True, yield_per=batch_size))
    try:
        for partition in result.partitions():
            yield [tuple(row) for row in partition]
    finally:
        result.close()
