"""The benchmark's CPU accounting (bench/cpu.py) on real processes and sockets of this machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

import sqlalchemy as sa

from bench.cpu import (
    CpuMeter, Part, Reading, Split, children_of, cpu_s, database_in_title, descendants, listening_pid,
    postgres_database, split, tree_cpu_s,
)

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def burner(seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BURN.format(seconds=seconds)])


def test_a_process_cpu_time_grows_by_what_it_burns():
    proc = burner(0.4)
    try:
        time.sleep(0.05)
        start = cpu_s(proc.pid)
        assert start is not None
        while proc.poll() is None:
            later = cpu_s(proc.pid)
            if later is not None:
                seen = later
            time.sleep(0.02)
        assert 0.25 <= seen <= 0.6
    finally:
        proc.wait()
    assert cpu_s(proc.pid) is None  # gone


def test_a_tree_counts_the_children_it_reaped_and_those_still_running():
    # A parent that runs one child to its end (reaped: its time moves to the parent's children's
    # time) and keeps a second one burning: the tree has both.
    script = (
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {BURN.format(seconds=0.3)!r}])\n"
        f"live = subprocess.Popen([sys.executable, '-c', {BURN.format(seconds=0.3)!r}])\n"
        "live.wait(); print('done', flush=True); time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "done"
        total = tree_cpu_s(parent.pid, children_of())
        own = cpu_s(parent.pid)
        assert total is not None and own is not None
        assert total - own >= 0.5  # both children's 0.3 s, minus the clock's grain
    finally:
        parent.kill()
        parent.wait()


def test_the_listener_of_a_port_is_found_by_its_socket():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert listening_pid(port) == os.getpid()
    assert listening_pid(port) is None


def test_the_split_is_per_command_and_names_what_no_part_accounts_for():
    before = Reading({"APIs": 10.0, "consumers": 5.0, CpuMeter.MACHINE: 100.0})
    after = Reading({"APIs": 12.0, "consumers": 6.0, CpuMeter.MACHINE: 104.0})
    result = split([(before, after)], commands=1000, wall_s=2.5)
    assert result.ms_per_command == pytest.approx(
        {"APIs": 2.0, "consumers": 1.0, CpuMeter.MACHINE: 4.0, Split.REST: 1.0})
    assert result.total_ms == pytest.approx(4.0)
    assert result.cores_busy == pytest.approx(1.6)  # 4 s of CPU in 2.5 s
    assert result.of("APIs", "consumers", "absent") == pytest.approx(3.0)


def test_a_phase_in_two_parts_adds_them_and_an_unreadable_part_stays_unknown():
    first = (Reading({"APIs": 0.0, "Kafka": 1.0, CpuMeter.MACHINE: 0.0}),
             Reading({"APIs": 1.0, "Kafka": 2.0, CpuMeter.MACHINE: 3.0}))
    second = (Reading({"APIs": 5.0, "Kafka": None, CpuMeter.MACHINE: 10.0}),
              Reading({"APIs": 8.0, "Kafka": 3.0, CpuMeter.MACHINE: 15.0}))
    result = split([first, second], commands=2000, wall_s=4.0)
    assert result.ms_per_command["APIs"] == pytest.approx(2.0)  # (1 + 3) s / 2000
    assert result.ms_per_command["Kafka"] is None
    assert result.ms_per_command[Split.REST] == pytest.approx(2.0)  # 8 s in all, 4 s of them the APIs'


def test_the_meter_reads_live_processes_and_marks_a_part_it_cannot_see():
    proc = burner(0.3)
    try:
        meter = CpuMeter([Part("burner", lambda: [proc.pid]), Part("nobody", lambda: [])])
        before = meter.read()
        proc.wait()
    finally:
        proc.wait()
    assert before.parts["nobody"] is None
    assert before.parts["burner"] is not None and before.parts[CpuMeter.MACHINE] > 0
    assert meter.read().parts["burner"] is None  # ended: its time can no longer be read


def test_shares_count_a_process_there_at_both_readings_and_one_started_between_but_not_one_that_ended():
    pg = "PostgreSQL"
    before = Reading({pg: 10.0, CpuMeter.MACHINE: 0.0}, {
        (pg, "bench_tax", 101): 1.0, (pg, "bench_tax", 102): 2.0, (pg, "bench_account", 103): 5.0,
    })
    after = Reading({pg: 16.0, CpuMeter.MACHINE: 8.0}, {
        (pg, "bench_tax", 101): 3.0,  # 2 s in between
        (pg, "bench_account", 104): 1.5,  # started in between: all of its 1.5 s
        # 102 and 103 ended: what they spent in between is in the server's reaped time only
    })
    result = split([(before, after)], commands=1000, wall_s=4.0)
    assert result.ms_per_command[pg] == pytest.approx(6.0)
    assert result.shares == {pg: pytest.approx({"bench_tax": 2.0, "bench_account": 1.5, Split.UNSHARED: 2.5})}
    assert result.ms_per_command[Split.REST] == pytest.approx(2.0)  # the shares are in no sum


def test_a_part_that_cannot_be_read_has_no_shares():
    pg = "PostgreSQL"
    before = Reading({pg: None, CpuMeter.MACHINE: 0.0}, {})
    after = Reading({pg: 4.0, CpuMeter.MACHINE: 8.0}, {(pg, "bench_tax", 101): 1.0})
    assert split([(before, after)], commands=1000, wall_s=4.0).shares == {}


@pytest.mark.parametrize(("title", "database"), [
    ("postgres: postgres bench_fund_account 127.0.0.1(52810) idle", "bench_fund_account"),
    ("postgres: app bench_tax [local] SELECT", "bench_tax"),
    ("postgres: main: postgres bench_payout ::1(40000) idle in transaction", "bench_payout"),
    ("postgres: checkpointer", None),
    ("postgres: autovacuum worker bench_account", None),
    ("postgres: logical replication launcher", None),
    ("/usr/lib/postgresql/15/bin/postgres -D /data -p 55432", None),
    ("", None),
])
def test_a_connection_is_known_by_its_database_in_its_process_title(title, database):
    assert database_in_title(title) == database


def test_the_server_s_connections_are_shared_by_database_and_its_own_processes_by_none(postgres_url):
    url = sa.engine.make_url(postgres_url)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            assert postgres_database(backend) == url.database
            postmaster = listening_pid(url.port or 5432)
            assert postmaster is not None
            below = descendants(postmaster, children_of())
            assert backend in below
            assert any(postgres_database(pid) is None for pid in below)  # the checkpointer, the WAL writer...
    finally:
        engine.dispose()


def test_the_meter_reads_the_shares_of_a_tree_s_processes():
    script = (
        "import subprocess, sys, time\n"
        f"live = subprocess.Popen([sys.executable, '-c', {BURN.format(seconds=0.3)!r}])\n"
        "print(live.pid, flush=True); live.wait(); print('done', flush=True); time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        meter = CpuMeter([Part("tree", lambda: [parent.pid], tree=True,
                               share_of=lambda pid: "the child" if pid == child else None)])
        before = meter.read()
        assert set(before.shares) == {("tree", "the child", child)}
        time.sleep(0.2)
        during = meter.read()
        assert parent.stdout.readline().strip() == "done"
    finally:
        parent.kill()
        parent.wait()
    result = split([(before, during)], commands=1, wall_s=0.2)
    assert result.shares["tree"]["the child"] > 0
    assert result.shares["tree"]["the child"] <= result.ms_per_command["tree"] + 1e-9
