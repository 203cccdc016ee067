"""deploy/local/postgres.sh when its port is held by a client socket, not a listener, at a start or
a restart; and a restart keeps the data, and brings back a server that is down.

The local servers' ports (55432 for tests, 55490 for the benchmark) lie in Linux's range for the
local ends of outgoing connections. A loopback client of another server may hold one as its own
end, or leave it in TIME_WAIT after closing: nothing listens there, so the script's probe sees the
port free, and PostgreSQL cannot bind it (found running the test servers just after the benchmark)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg

from tests.support.ports import HeldPort, free_port, restarted_while_held

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "postgres.sh"


def _script(infra: Path, port: int, *args: str, wait_s: int) -> subprocess.Popen:
    env = {**os.environ, "PENSION_INFRA_DIR": str(infra), "PENSION_PG_PORT": str(port),
           "PENSION_PG_BIND_WAIT_S": str(wait_s)}
    return subprocess.Popen(["bash", str(SCRIPT), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _stop(infra: Path, port: int) -> None:
    _script(infra, port, "stop", wait_s=0).communicate(timeout=60)


def test_start_waits_for_a_client_socket_on_its_port_to_go_then_serves(tmp_path: Path) -> None:
    held = HeldPort()
    infra = tmp_path / "infra"
    starting = _script(infra, held.port, "start", wait_s=90)
    try:
        log = infra / "pg" / "server.log"
        deadline = time.monotonic() + 60
        while not (log.exists() and "Address already in use" in log.read_text(errors="replace")):
            assert starting.poll() is None, starting.communicate()
            assert time.monotonic() < deadline, "the server never tried the held port"
            time.sleep(0.2)
        held.release()
        out, err = starting.communicate(timeout=120)
        assert starting.returncode == 0, err
        assert f"127.0.0.1:{held.port} is held by a client socket on this machine; waiting up to 90 s" in err
        assert f"up on 127.0.0.1:{held.port}" in out
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{held.port}/postgres", connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            # Text compares bytewise: the order of code points, Python's (character classes stay C.UTF-8's).
            assert conn.execute("SELECT datcollate FROM pg_database WHERE datname = 'template1'").fetchone() == ("C",)
            words = ["pe1", "PE1", "b", "B", "é", "e", "张", "Z", "_x"]
            ordered = conn.execute("SELECT array_agg(w ORDER BY w) FROM unnest(%s::text[]) AS w", (words,)).fetchone()
            assert ordered == (sorted(words),)
    finally:
        held.release()
        if starting.poll() is None:
            starting.kill()
        _stop(infra, held.port)


def test_start_gives_up_with_the_servers_log_when_the_port_stays_held(tmp_path: Path) -> None:
    held = HeldPort()
    infra = tmp_path / "infra"
    try:
        starting = _script(infra, held.port, "start", wait_s=3)
        out, err = starting.communicate(timeout=120)
        assert starting.returncode != 0
        assert "waiting up to 3 s" in err
        assert "could not bind IPv4 address" in err and "Address already in use" in err
        assert err.rstrip().endswith("postgres: ERROR: PostgreSQL did not start")
        assert "up on" not in out
    finally:
        held.release()
        _stop(infra, held.port)


def test_restart_keeps_the_data_and_brings_a_server_that_is_down_back_waiting_for_its_held_port(tmp_path: Path) -> None:
    port, infra = free_port(), tmp_path / "infra"
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        out, err = _script(infra, port, "start", wait_s=0).communicate(timeout=120)
        assert f"up on 127.0.0.1:{port}" in out, err
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE TABLE kept (n integer)")
            conn.execute("INSERT INTO kept VALUES (1)")
        for mode in ("immediate", "fast"):
            out, err = _script(infra, port, "restart", mode, wait_s=0).communicate(timeout=120)
            assert f"restarted ({mode}) on 127.0.0.1:{port}" in out, err
        # Down, as after a restart that failed half way, and while it is down a client socket takes
        # its port as its own end: restart starts it, once the port is free again.
        pid = int((infra / "pg" / "data" / "postmaster.pid").read_text().split()[0])
        out, err = restarted_while_held(pid, signal.SIGINT, port, infra / "pg" / "server.log",
                                        lambda: _script(infra, port, "restart", wait_s=90))
        assert f"127.0.0.1:{port} is held by a client socket on this machine; waiting up to 90 s" in err
        assert f"restarted (fast) on 127.0.0.1:{port}" in out
        with psycopg.connect(url, connect_timeout=10) as conn:
            assert conn.execute("SELECT n FROM kept").fetchall() == [(1,)]
    finally:
        _stop(infra, port)
