"""The network's event stream: control events (what was asked) and live events (what happened)."""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
from collections.abc import Iterator

from pytest_gashammer.results import NetworkEvent

CONTROL = "control"
LIVE = "live"
#: Events kept for :meth:`EventLog.between` and snapshots of the stream (a few hundred bytes each).
MAX_EVENTS = 100_000
#: Events a subscriber that does not read may fall behind by before the oldest are dropped for it.
SUBSCRIBER_BACKLOG = 10_000


class EventLog:
    """Ordered, timestamped, bounded; every event also goes to each open :class:`Subscription`."""

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self._lock = threading.Lock()
        self._events: collections.deque[NetworkEvent] = collections.deque(maxlen=max_events)
        self._subscribers: list[Subscription] = []
        self.dropped = 0

    def emit(
        self,
        source: str,
        kind: str,
        node: str,
        *,
        peer: str = "",
        number: int | None = None,
        detail: str = "",
    ) -> NetworkEvent:
        with self._lock:
            # Stamped under the lock so that the stream's order is the order of the times.
            event = NetworkEvent(time.time(), source, kind, node, peer, number, detail)
            if len(self._events) == self._events.maxlen:
                self.dropped += 1
            self._events.append(event)
            for subscriber in self._subscribers:
                subscriber._put(event)
        return event

    def between(self, start_unix: float, end_unix: float) -> list[NetworkEvent]:
        with self._lock:
            return [event for event in self._events if start_unix <= event.at <= end_unix]

    def all(self) -> list[NetworkEvent]:
        with self._lock:
            return list(self._events)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
        with self._lock:
            self._subscribers.append(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)


class Subscription:
    """The events from the moment of subscribing on, in order: iterate, or :meth:`get` with a timeout.

    Iteration ends when the subscription is closed (also as a context manager) or after
    ``timeout`` seconds without an event, when one is given to :meth:`iterate`.
    """

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._queue: queue.Queue[NetworkEvent | None] = queue.Queue(maxsize=SUBSCRIBER_BACKLOG)
        self._closed = False
        self.dropped = 0

    def _put(self, event: NetworkEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def get(self, timeout: float | None = None) -> NetworkEvent | None:
        """The next event, or None after ``timeout`` seconds (or once closed)."""
        if self._closed and self._queue.empty():
            return None
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def iterate(self, timeout: float | None = None) -> Iterator[NetworkEvent]:
        while True:
            event = self.get(timeout)
            if event is None:
                return
            yield event

    def __iter__(self) -> Iterator[NetworkEvent]:
        return self.iterate()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._log._unsubscribe(self)
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)  # wakes a reader blocked in get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
