"""The short form of ``make chaos`` (issue 8): the same harness, ``scripts/chaos.sh --quick``,
on a PostgreSQL and a Kafka of its own (it restarts them, so it cannot use the suite's), on
private ports, in a directory of its own under the infra directory (not pytest's temporary
directory: pytest deletes old ones while a concurrent session may still use them). About a
minute and a half of load with every kind of fault injected twice, then zero violations."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KINDS = ("kill -9 api", "kill -9 relay", "kill -9 consumer", "kafka restart", "postgres restart", "broker cut")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_block(size: int, start: int) -> int:
    """The first port of ``size`` consecutive free ports from ``start`` on."""
    for base in range(start, 32700, size):
        if all(_free(base + i) for i in range(size)):
            return base
    raise RuntimeError("no block of free ports")


@pytest.mark.timeout(900)  # about 4 minutes on two busy cores, most of it starting the processes
def test_faults_under_load_break_no_invariant() -> None:
    # Below the ephemeral range (32768-60999): no outgoing connection takes a port of a server
    # while it restarts.
    kafka_port = _free_block(11, 23000 + os.getpid() % 300 * 11)
    pg_port = _free_block(1, kafka_port + 11)
    infra = Path(os.environ.get("PENSION_INFRA_DIR") or REPO / ".infra") / f"chaos-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PENSION_CHAOS_INFRA_DIR": str(infra),
        "PENSION_CHAOS_PG_PORT": str(pg_port),
        "PENSION_CHAOS_KAFKA_PORT": str(kafka_port),
    }
    # A session of its own: on a timeout, SIGTERM reaches the harness and the script, which stop
    # the processes, the broker and the database they started.
    run = subprocess.Popen([str(REPO / "scripts" / "chaos.sh"), "--quick"], cwd=REPO, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        report, log = run.communicate(timeout=840)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGTERM)
        report, log = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    sys.stderr.write(log[-4000:])
    assert run.returncode == 0, f"exit {run.returncode} (the processes' logs: {infra / 'run'})\n{report}\n{log[-3000:]}"
    shutil.rmtree(infra, ignore_errors=True)
    assert re.search(r"^violations: 0$", report, re.MULTILINE), report
    faults = re.search(r"^faults injected: \d+ \((.*)\)$", report, re.MULTILINE)
    assert faults, report
    counts = {kind: int(n) for kind, n in re.findall(r"([a-z -9]+?) (\d+)(?:, |$)", faults.group(1))}
    for kind in KINDS:
        assert counts.get(kind, 0) >= 2, f"{kind}: {counts}"
    acknowledged = re.search(r"^operations acknowledged: (\d+) \(contribution (\d+)", report, re.MULTILINE)
    assert acknowledged and int(acknowledged.group(2)) > 100, report
    checked = re.search(r"^invariants checked: (\d+) invariants, (\d+) checks$", report, re.MULTILINE)
    assert checked and int(checked.group(1)) >= 14 and int(checked.group(2)) > 1000, report
