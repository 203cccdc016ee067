"""A TCP proxy between one service's processes and the Kafka broker, which can cut them off.

The broker advertises a listener at the proxy's port (``PENSION_KAFKA_PROXIED`` of
deploy/local/kafka.sh), so once a client has bootstrapped through the proxy every later
connection also goes through it. ``cut()`` closes every connection and refuses new ones until
``heal()``. The proxies of a run share one asyncio loop on a thread of their own."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future


class ProxyLoop:
    """The thread and event loop the proxies run on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="chaos-proxies", daemon=True)
        self._thread.start()

    def call(self, coroutine) -> object:  # noqa: ANN001
        future: Future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


class Proxy:
    def __init__(self, loop: ProxyLoop, *, listen_port: int, target_port: int, host: str = "127.0.0.1") -> None:
        self._loop = loop
        self.host, self.listen_port, self.target_port = host, listen_port, target_port
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0
        self.cuts = 0

    # -- the controls, called from any thread ------------------------------------------------

    def start(self) -> None:
        self._loop.call(self._listen())

    def cut(self) -> None:
        """Close every connection and refuse new ones."""
        self.cuts += 1
        self._loop.call(self._cut())

    def heal(self) -> None:
        self._loop.call(self._listen())

    def stop(self) -> None:
        self._loop.call(self._cut())

    @property
    def is_cut(self) -> bool:
        return self._server is None

    # -- on the loop ---------------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, self.host, self.listen_port, reuse_address=True)

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._server is None:
            client_writer.transport.abort()
            return
        try:
            broker_reader, broker_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self.connections += 1
        pair = (client_writer, broker_writer)
        self._writers.update(pair)
        try:
            await asyncio.gather(_pipe(client_reader, broker_writer), _pipe(broker_reader, client_writer))
        finally:
            for writer in pair:
                self._writers.discard(writer)
                writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort()
