"""The minimal reference the benchmark compares the platform with: a FastAPI endpoint that accepts
any command and does only what every command must do at the least, appending one event row and
one outbox row in one transaction, on the same PostgreSQL, served the same way (uvicorn, the
blocking database work on the thread pool, the shared engine settings).

``python -m bench.reference reference --port P`` with ``PENSION_DATABASE_URL`` set."""

from __future__ import annotations

import argparse
import os
import uuid
from datetime import datetime, timezone

import orjson
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from pension_shared.db import create_engine
from pension_shared.envelope import Envelope, chain_hash
from pension_shared.schema import events, outbox

SCHEMA = "bench_reference"
_metadata = sa.MetaData()
reference_events = events.to_metadata(_metadata, schema=SCHEMA)
reference_outbox = outbox.to_metadata(_metadata, schema=SCHEMA)
SOURCE = "/pension/reference"
TYPE = "cn.pension.reference.CommandAccepted.v1"


def build_app(database_url: str) -> FastAPI:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        _metadata.create_all(conn)

    def append(subject: str, data: dict) -> dict:
        attributes = dict(
            id=str(uuid.uuid4()), source=SOURCE, type=TYPE, time=datetime.now(timezone.utc).isoformat(),
            subject=subject, streamid=f"reference-{subject}-{uuid.uuid4().hex[:8]}", sequence=1, data=data,
            prevhash=None, correlationid=None, causationid=None,
        )
        envelope = Envelope(**attributes, hash=chain_hash(**attributes))
        with engine.begin() as conn:
            position = conn.execute(reference_events.insert().returning(reference_events.c.position), {
                "event_id": envelope.id, "stream_id": envelope.streamid, "sequence": 1, "type": TYPE,
                "source": SOURCE, "subject": subject, "time": envelope.time,
                "data": orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode(), "prevhash": None, "hash": envelope.hash,
            }).scalar_one()
            conn.execute(reference_outbox.insert(), {
                "event_id": envelope.id, "topic": "bench.reference", "key": subject, "payload": envelope.to_json(),
            })
        return {"event_id": envelope.id, "position": position}

    app = FastAPI(title="benchmark reference")

    @app.get("/ready")
    def ready() -> dict:
        return {"ready": True}

    @app.post("/{path:path}", status_code=201)
    async def accept(path: str, request: Request) -> JSONResponse:
        data = orjson.loads(await request.body() or b"{}")
        subject = path.strip("/").split("/")[2] if path.count("/") >= 2 else "reference"
        return JSONResponse(await run_in_threadpool(append, subject[:64], data), status_code=201)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.reference")
    parser.add_argument("role", choices=["reference"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvicorn

    # Served as the services' APIs are (pension_shared.runtime): no access line per request.
    uvicorn.run(build_app(os.environ["PENSION_DATABASE_URL"]), host=args.host, port=args.port,
                log_config=None, access_log=False)


if __name__ == "__main__":
    main()
