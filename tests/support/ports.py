"""Loopback ports for the tests of the local servers' scripts: free ones, ones held by a client
socket (taken, though nothing listens on them), and a server restarted while its port is held."""

from __future__ import annotations

import errno
import os
import socket
import struct
import subprocess
from pathlib import Path
from typing import Callable

from tests.support.requests import eventually


class HeldPort:
    """A loopback connection whose client end is bound to a port of its own: that port is taken
    while the connection lasts, though nothing listens on it (as a client of another server may
    hold a port in the range for outgoing connections' local ends). Without SO_REUSEADDR, as
    such a client has it: a server's listening socket, which sets it, could share the port with
    a socket that sets it too."""

    def __init__(self, port: int = 0) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._client = socket.socket()
        try:
            self._client.bind(("127.0.0.1", port))
        except OSError:
            self._client.close()
            self._listener.close()
            raise
        self._client.connect(self._listener.getsockname())
        self._accepted, _ = self._listener.accept()
        self.port = self._client.getsockname()[1]

    def release(self) -> None:
        """Close the client end with a reset, so it leaves no TIME_WAIT behind on the port."""
        if self._client.fileno() != -1:
            self._client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        for s in (self._client, self._accepted, self._listener):
            s.close()


def free_port(consecutive: int = 1) -> int:
    """A loopback port nothing listens on, followed by ``consecutive - 1`` more."""
    while True:
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = probe.getsockname()[1]
        if all(_free(port + k) for k in range(1, consecutive)):
            return port


def _free(port: int) -> bool:
    try:
        with socket.create_server(("127.0.0.1", port)):
            return True
    except OSError:
        return False


def _held(port: int) -> HeldPort | None:
    """The port held, or None while a connection the server closed first keeps it in TIME_WAIT
    (up to a minute on Linux), which a socket without SO_REUSEADDR cannot bind past."""
    try:
        return HeldPort(port)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def restarted_while_held(pid: int, signum: int, port: int, log: Path,
                         restart: Callable[[], subprocess.Popen]) -> tuple[str, str]:
    """Stop the server ``pid`` with ``signum``, as a restart failing half way leaves it; while it
    is down, hold its port with a client socket, and run ``restart``. Once the server has tried
    the port (its ``log`` says the address is in use) and the restart is still waiting, release
    it. What the restart printed, out and err, once it has succeeded."""
    os.kill(pid, signum)
    eventually(lambda: not alive(pid), timeout_s=60)
    held = eventually(lambda: _held(port), timeout_s=90, interval_s=0.5)
    try:
        restarting = restart()
        eventually(lambda: "Address already in use" in log.read_text(errors="replace") or restarting.poll() is not None,
                   timeout_s=120)
        assert restarting.poll() is None, restarting.communicate()
    finally:
        held.release()
    out, err = restarting.communicate(timeout=180)
    assert restarting.returncode == 0, err
    return out, err
