"""Timeline faults on the sequencer feed: a disconnect, a stall, and messages lost in transit.

Each one is a condition a healthy chain's feed clients must survive while it lasts, applied by
:class:`~pytest_gashammer.fault.feed_proxy.FeedProxy` while the fault is armed (see :mod:`.switched`
for the switch and the record):

- :class:`FeedDisconnect` closes every client connection at arm and refuses new ones (HTTP 503) until
  disarm; a client then reconnects asking for the sequence number it needs and resumes;
- :class:`FeedStall` keeps connections open and sends nothing; at disarm what was held goes out, late
  and in order;
- :class:`FeedDrop` loses every message in transit; the client sees the gap at the next message it
  gets and asks the upstream for the missing numbers when it reconnects (the proxy passes its
  ``Arbitrum-Requested-Sequence-Number`` upstream).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pytest_gashammer.fault.feed_faults import FeedFault
from pytest_gashammer.fault.switched import TimelineFault
from pytest_gashammer.feed.codec import FeedMessage

__all__ = ["FeedDisconnect", "FeedDrop", "FeedStall", "FeedTimelineFault"]

_AFFECTED_LIMIT = 100_000  # sequence numbers a drop remembers in ``affected``; counters go on


class FeedTimelineFault(TimelineFault, FeedFault):
    """A timeline fault on the feed path. The proxy asks these on its loop, while the fault is armed."""

    refuses: ClassVar[bool] = False
    """True when the proxy must refuse new client handshakes (HTTP 503) while this fault is armed."""
    holds: ClassVar[bool] = False
    """True when the proxy must hold every frame (send nothing) while this fault is armed."""

    max_held_frames: int = 0
    """For a holding fault: frames one connection may hold before it is closed instead."""

    # What the proxy tells the fault it did on its behalf (on the loop), for the record.
    def refused(self) -> None:
        """A client handshake was refused."""

    def held(self, frames: int, messages: int) -> None:
        """A frame of ``messages`` messages was held."""

    def released(self, frames: int) -> None:
        """``frames`` held frames were delivered late."""

    def overflowed(self) -> None:
        """A connection held more than :attr:`max_held_frames` and was closed."""


class FeedDisconnect(FeedTimelineFault):
    """At arm, closes every client connection abruptly (no close frame, as a partition would); while
    armed, refuses new connections with HTTP 503 at the handshake; at disarm, accepts them again.

    The proxy's upstream connections close with their clients, so a client that reconnects after the
    disarm gets a fresh upstream connection from the sequence number it asks for.
    """

    kind = "feed.disconnect"
    touch_key = "connections"
    refuses = True

    def on_switch(self, proxy: Any, armed: bool, window: int) -> None:
        if armed:
            self._count("connections", proxy.close_clients())

    def refused(self) -> None:
        self._count("refused")

    def summary(self) -> str:
        stats = self.stats
        return (
            f"{self.kind} closed {self.touched} connections and refused "
            f"{int(stats.get('refused', 0))} handshakes"
        )


class FeedStall(FeedTimelineFault):
    """Keeps every connection open and sends nothing while armed; at disarm, delivers what it held.

    Frames that arrive from the upstream meanwhile are held per connection, after the other faults saw
    them, and go out in order right after the disarm (before anything newer). Pings are still
    answered, so a client sees a quiet feed, not a dead one. A connection holding more than
    ``max_held_frames`` frames is closed instead (its client reconnects and resumes), so a long stall
    on a busy feed cannot grow the proxy without bound.
    """

    kind = "feed.stall"
    touch_key = "messages"
    holds = True

    def __init__(self, *, max_held_frames: int = 100_000, armed: bool = True) -> None:
        if isinstance(max_held_frames, bool) or not isinstance(max_held_frames, int) or max_held_frames < 1:
            raise ValueError(
                f"FeedStall: max_held_frames={max_held_frames!r} must be a positive integer, e.g. 100_000"
            )
        self.max_held_frames = max_held_frames
        super().__init__(armed=armed)

    def on_switch(self, proxy: Any, armed: bool, window: int) -> None:
        if not armed:
            proxy.release_held()

    def held(self, frames: int, messages: int) -> None:
        self._count("frames", frames)
        self._count("messages", messages)

    def released(self, frames: int) -> None:
        self._count("released_frames", frames)

    def overflowed(self) -> None:
        self._count("overflow")

    def summary(self) -> str:
        stats = self.stats
        return (
            f"{self.kind} held {self.touched} messages ({int(stats.get('frames', 0))} frames), "
            f"{int(stats.get('released_frames', 0))} frames delivered late, "
            f"{int(stats.get('overflow', 0))} connections closed over the cap"
        )


class FeedDrop(FeedTimelineFault):
    """Loses every message in transit while armed: it is never delivered on that connection.

    :attr:`affected` lists the dropped sequence numbers (once each, the first 100,000). The client
    sees the gap at the next message it gets after the disarm and recovers by reconnecting with
    ``Arbitrum-Requested-Sequence-Number`` set to the first number it misses; the proxy passes that
    header upstream, so the feed replays them. Messages below the number a client asked for are not
    offered (see :class:`~pytest_gashammer.fault.feed_proxy.FeedProxy`).
    """

    kind = "feed.drop"
    touch_key = "messages"

    def on_messages(self, stream: int, messages: list[FeedMessage]) -> list[FeedMessage]:
        if not self._armed or not messages:
            return messages
        self._count("messages", len(messages))
        with self._lock:
            for message in messages:
                sequence = message.sequence_number
                if sequence not in self._affected_set and len(self._affected) < _AFFECTED_LIMIT:
                    self._affected_set.add(sequence)
                    self._affected.append(sequence)
        return []

    def summary(self) -> str:
        return f"{self.kind} dropped {self.touched} messages in transit"
