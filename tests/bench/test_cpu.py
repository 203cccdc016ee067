"""The benchmark's CPU accounting (bench/cpu.py) on real processes and sockets of this machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from bench.cpu import CpuMeter, Part, Split, children_of, cpu_s, listening_pid, split, tree_cpu_s

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
    before = {"APIs": 10.0, "consumers": 5.0, CpuMeter.MACHINE: 100.0}
    after = {"APIs": 12.0, "consumers": 6.0, CpuMeter.MACHINE: 104.0}
    result = split([(before, after)], commands=1000, wall_s=2.5)
    assert result.ms_per_command == pytest.approx(
        {"APIs": 2.0, "consumers": 1.0, CpuMeter.MACHINE: 4.0, Split.REST: 1.0})
    assert result.total_ms == pytest.approx(4.0)
    assert result.cores_busy == pytest.approx(1.6)  # 4 s of CPU in 2.5 s
    assert result.of("APIs", "consumers", "absent") == pytest.approx(3.0)


def test_a_phase_in_two_parts_adds_them_and_an_unreadable_part_stays_unknown():
    first = ({"APIs": 0.0, "Kafka": 1.0, CpuMeter.MACHINE: 0.0}, {"APIs": 1.0, "Kafka": 2.0, CpuMeter.MACHINE: 3.0})
    second = ({"APIs": 5.0, "Kafka": None, CpuMeter.MACHINE: 10.0}, {"APIs": 8.0, "Kafka": 3.0, CpuMeter.MACHINE: 15.0})
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
    assert before["nobody"] is None
    assert before["burner"] is not None and before[CpuMeter.MACHINE] > 0
    assert meter.read()["burner"] is None  # ended: its time can no longer be read
