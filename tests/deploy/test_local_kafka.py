"""deploy/local/kafka.sh restart: the broker comes back on its data, also when it is down and a
client socket holds its port (not listening on it), once that socket is gone.

The ports the tests and the benchmark use (19092, 19190) lie below Linux's range for the local
ends of outgoing connections (32768-60999). One chosen in it (PENSION_KAFKA_PORT) may be held by a
loopback client of another server as its own end while the broker is down: nothing listens there,
so the script's probe sees the port free, and the broker exits, unable to bind it."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from tests.support.ports import free_port, restarted_while_held

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "local" / "kafka.sh"


def _script(infra: Path, port: int, *args: str, wait_s: int) -> subprocess.Popen:
    env = {**os.environ, "PENSION_INFRA_DIR": str(infra), "PENSION_KAFKA_PORT": str(port),
           "PENSION_KAFKA_BIND_WAIT_S": str(wait_s)}
    return subprocess.Popen(["bash", str(SCRIPT), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _records(bootstrap: str, topic: str) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=10_000)
    try:
        return [record.value for record in consumer]
    finally:
        consumer.close()


def test_restart_brings_a_broker_that_is_down_back_on_its_data_waiting_for_its_held_port(tmp_path: Path) -> None:
    # The jars the test run fetched (deploy/local/kafka.sh start, before the tests), not fetched again.
    libs = Path(os.environ.get("PENSION_INFRA_DIR", REPO / ".infra")) / "kafka" / "libs"
    if not (libs / ".complete").exists():
        pytest.fail(f"no Kafka jars in {libs}: run the tests with `make test` (it fetches them)")
    infra, port = tmp_path / "infra", free_port(consecutive=2)
    (infra / "kafka").mkdir(parents=True)
    (infra / "kafka" / "libs").symlink_to(libs)
    bootstrap, topic = f"127.0.0.1:{port}", f"kept-{uuid.uuid4().hex[:8]}"
    try:
        out, err = _script(infra, port, "start", wait_s=0).communicate(timeout=180)
        assert f"up on 127.0.0.1:{port}" in out, err
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        producer.send(topic, b"before the restart").get(timeout=30)
        producer.close()
        # Down, as after a restart that failed half way, and while it is down a client socket takes
        # its port as its own end: restart starts it on the same data, once the port is free again.
        pid = int((infra / "kafka" / "kafka.pid").read_text())
        out, err = restarted_while_held(pid, signal.SIGTERM, port, infra / "kafka" / "kafka.log",
                                        lambda: _script(infra, port, "restart", wait_s=120))
        assert f"127.0.0.1:{port} or 127.0.0.1:{port + 1} is held by a client socket on this machine; waiting up to 120 s" in err
        assert f"up on 127.0.0.1:{port}" in out
        assert _records(bootstrap, topic) == [b"before the restart"]
    finally:
        _script(infra, port, "stop", wait_s=0).communicate(timeout=60)
