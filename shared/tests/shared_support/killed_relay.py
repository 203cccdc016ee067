"""A relay process that dies (``os._exit``) right after the broker acknowledged a batch and
before the outbox rows are marked published: ``python -m shared_support.killed_relay URL BOOTSTRAP``."""

from __future__ import annotations

import os
import sys

from pension_shared.db import create_engine
from pension_shared.messaging.kafka import KafkaPublisher
from pension_shared.relay import OutboxRelay


def main(url: str, bootstrap: str) -> None:
    engine = create_engine(url)
    publisher = KafkaPublisher(bootstrap, client_id="killed-relay")

    def die(ids: object) -> None:
        sys.stdout.write(f"published {len(ids)} rows, dying before marking them\n")  # type: ignore[arg-type]
        sys.stdout.flush()
        os._exit(1)

    OutboxRelay(engine, publisher, after_publish=die).relay_once()
    sys.exit("the relay had nothing to publish")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
