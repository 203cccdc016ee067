"""The live view's source: one reader follows the services' topics for every browser watching
(however many are), keeps the latest events for the ones that arrive later, and hands each new
event to every watcher. Events are rendered as ``pension events tail --json`` renders them, ID
numbers masked."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import orjson

from pension_cli.commands.events import record_document
from pension_cli.log_access import LogAccess
from pension_shared.envelope import MalformedEvent, parse_cloudevent
from pension_shared.messaging import IncomingRecord
from pension_shared.pii import mask_id_numbers

log = logging.getLogger(__name__)

KEPT = 200
"""Events kept for a watcher that arrives later."""
BACK = 20
"""At start, the reader begins this many records before the end of each partition."""


@dataclass(frozen=True)
class LiveEvent:
    id: str
    """``<topic>:<partition>:<offset>``: where the record is, unique on the log."""
    data: str
    """The masked JSON the browser receives."""


END = LiveEvent("", "")
"""Handed to every watcher when the server stops: its stream ends, so nothing holds the stop up."""


def live_event(record: IncomingRecord) -> LiveEvent:
    try:
        envelope = parse_cloudevent(record.value)
    except MalformedEvent:
        envelope = None
    document: dict[str, Any] = record_document(record, envelope)
    document["id"] = f"{record.topic}:{record.partition}:{record.offset}"
    if envelope is not None:
        document["summary"] = {
            "time": envelope.time, "type": envelope.type, "name": envelope.event_type.name,
            "subject": envelope.subject, "sequence": envelope.sequence,
        }
    return LiveEvent(document["id"], mask_id_numbers(orjson.dumps(document).decode()))


class Watcher:
    """One browser's stream: the events handed to it, on its own event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, capacity: int = 1000) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[LiveEvent] = asyncio.Queue(maxsize=capacity)
        self.overflowed = False

    def offer(self, event: LiveEvent) -> None:
        """Called on the watcher's loop. A watcher too slow to keep up is dropped (its browser
        reconnects and is sent the kept events again)."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


class LiveEvents:
    def __init__(self, open_log: Callable[[], LogAccess], topics: list[str], *, retry_s: float = 2.0) -> None:
        self._open_log = open_log
        self._topics = topics
        self._retry_s = retry_s
        self._kept: deque[LiveEvent] = deque(maxlen=KEPT)
        self._watchers: set[Watcher] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ending = False
        self._thread: threading.Thread | None = None

    def watch(self, loop: asyncio.AbstractEventLoop) -> tuple[Watcher, list[LiveEvent]]:
        """A new watcher and the events kept so far, taken together so none is missed or doubled."""
        self._start()
        watcher = Watcher(loop)
        with self._lock:
            if self._ending:
                watcher.offer(END)
            self._watchers.add(watcher)
            return watcher, list(self._kept)

    def unwatch(self, watcher: Watcher) -> None:
        with self._lock:
            self._watchers.discard(watcher)

    def kept(self) -> list[LiveEvent]:
        self._start()
        with self._lock:
            return list(self._kept)

    def end_streams(self) -> None:
        """End every stream now and any opened from now on (the server is stopping)."""
        with self._lock:
            self._ending = True
            watchers = list(self._watchers)
        for watcher in watchers:
            try:
                watcher.loop.call_soon_threadsafe(watcher.offer, END)
            except RuntimeError:
                continue

    def stop(self) -> None:
        self.end_streams()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._follow, name="console-live-events", daemon=True)
                self._thread.start()

    def _follow(self) -> None:
        back = BACK
        while not self._stop.is_set():
            try:
                reader = self._open_log()
                try:
                    for record in reader.records(self._topics, from_beginning=False, follow=True, stop=self._stop, back=back):
                        self._publish(live_event(record))
                finally:
                    reader.close()
            except Exception:  # the live view must outlive a broker or database outage
                log.exception("the console's live view lost the log; reading again")
            back = 0
            self._stop.wait(self._retry_s)

    def _publish(self, event: LiveEvent) -> None:
        with self._lock:
            self._kept.append(event)
            watchers = list(self._watchers)
        for watcher in watchers:
            try:
                watcher.loop.call_soon_threadsafe(watcher.offer, event)
            except RuntimeError:  # its loop has closed: the browser is gone
                self.unwatch(watcher)
