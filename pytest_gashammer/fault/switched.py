"""The base of timeline faults: conditions a healthy chain must survive, switched on and off during a run.

Why it exists: the promise-breaking faults (:mod:`.faults`, :mod:`.feed_faults`) make a target lie;
a timeline fault makes the path to it misbehave for a while (latency, errors, resets, a black hole, a
thin pipe, a feed that disconnects, stalls or loses messages) and then heal. A scheduler arms it at
the fault's begin and disarms it at its end, from its own thread, while the proxy applying it serves
on its event loop thread; the run then reports what the fault did (``rpc.error answered 37 calls
with -32603``).

Thread model: :meth:`TimelineFault.arm` and :meth:`TimelineFault.disarm` may be called from any
thread. The switch itself is one attribute the proxy's loop reads on every request or frame; what
must happen on the loop at the switch (close the connections open at arm time, drop what a black
hole held, release what a stall held) is posted to every proxy the fault is bound to with
``call_soon_threadsafe`` and runs there as :meth:`TimelineFault.on_switch`. Counters and the record
are kept under the fault's lock, so :attr:`stats`, :attr:`windows` and :attr:`events` are safe to
read from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, ClassVar

from pytest_gashammer.fault.faults import Fault

__all__ = ["SwitchCallback", "TimelineFault"]

SwitchCallback = Callable[["TimelineFault", bool, int], None]
"""What a proxy registers with :meth:`TimelineFault.bind`: ``(fault, armed, window)``, run on its loop."""


class TimelineFault(Fault):
    """A fault that acts only while armed and records its windows and what it touched.

    :attr:`kind` names it in reports (``rpc.latency``, ``feed.stall``). Each arm opens a window
    (``armed_ns`` on the wall clock, the clock a run's ``origin_ns`` is on) and each disarm closes it
    (``disarmed_ns``); :attr:`windows` gives every window with how many items it touched
    (:attr:`touch_key` of :attr:`stats`: calls, requests, connections or messages), and
    :attr:`events` the same switches as a flat list. :attr:`stats` holds the fault's counters;
    :meth:`summary` says it in one line. ``armed=True`` (the default, like every fault) opens the
    first window at construction; a scheduler constructs with ``armed=False`` and arms at the begin.
    """

    kind: ClassVar[str] = "timeline"
    """The fault's name in reports: ``<path>.<what>``."""
    touch_key: ClassVar[str] = "touched"
    """The counter in :attr:`stats` that a window's ``touched`` follows."""

    def __init__(self, *, armed: bool = True) -> None:
        super().__init__(armed=False)
        self._windows: list[dict[str, Any]] = []
        self._counters: dict[str, float] = {self.touch_key: 0}
        self._listeners: dict[int, tuple[asyncio.AbstractEventLoop, SwitchCallback]] = {}
        if armed:
            self.arm()

    # -- the switch (any thread) ----------------------------------------------------------------
    def arm(self) -> None:
        """Start acting now (idempotent). Safe from any thread; the proxies see it on their next step."""
        with self._lock:
            if self._armed:
                return
            now = time.time_ns()
            self._windows.append({"armed_ns": now, "disarmed_ns": None, "touched": 0})
            self._events.append({"event": "armed", "at_ns": now, "window": len(self._windows)})
            self._on_arm_locked()
            self._armed = True
            window = len(self._windows)
            listeners = list(self._listeners.values())
        self._notify(listeners, True, window)

    def disarm(self) -> None:
        """Stop acting now (idempotent). Safe from any thread; what the fault held is dealt with on the
        proxy's loop right after (dropped or released, as the fault says)."""
        with self._lock:
            if not self._armed:
                return
            self._armed = False
            now = time.time_ns()
            window = len(self._windows)
            self._windows[-1]["disarmed_ns"] = now
            touched = self._windows[-1]["touched"]
            self._events.append({"event": "disarmed", "at_ns": now, "window": window, "touched": touched})
            listeners = list(self._listeners.values())
        self._notify(listeners, False, window)

    def _on_arm_locked(self) -> None:
        """Reset whatever a new window starts from (called under the lock, before the switch flips)."""

    def _notify(
        self, listeners: list[tuple[asyncio.AbstractEventLoop, SwitchCallback]], armed: bool, window: int
    ) -> None:
        for loop, callback in listeners:
            with contextlib.suppress(RuntimeError):  # that proxy's loop has closed: nothing to do there
                loop.call_soon_threadsafe(callback, self, armed, window)

    # -- binding (the proxy's loop thread) ------------------------------------------------------
    def bind(self, owner: object, loop: asyncio.AbstractEventLoop, callback: SwitchCallback) -> None:
        """A proxy applies this fault: ``callback`` runs on ``loop`` at each switch (and now, if armed)."""
        with self._lock:
            self._listeners[id(owner)] = (loop, callback)
            armed, window = self._armed, len(self._windows)
        if armed:
            # Armed before this proxy knew it: whatever arming does to open connections applies now.
            self._notify([(loop, callback)], True, window)

    def unbind(self, owner: object) -> None:
        with self._lock:
            self._listeners.pop(id(owner), None)

    def on_switch(self, proxy: Any, armed: bool, window: int) -> None:
        """Run on ``proxy``'s loop after a switch: act on what is open or held there. Default: nothing."""

    def on_unbind(self, proxy: Any) -> None:
        """Run on ``proxy``'s loop when it stops: let go of whatever is held there. Default: nothing."""

    # -- the record (any thread) ----------------------------------------------------------------
    def _count(self, key: str, amount: float = 1) -> None:
        """Add to a counter; the touch counter also counts in the current window."""
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + amount
            if key == self.touch_key and self._windows:
                self._windows[-1]["touched"] += amount

    @property
    def stats(self) -> dict[str, Any]:
        """The fault's counters (a copy), with ``kind`` and ``windows`` (how many times it was armed)."""
        with self._lock:
            out: dict[str, Any] = {"kind": self.kind, "windows": len(self._windows)}
            out.update(self._counters)
            return out

    @property
    def touched(self) -> int:
        """How many items the fault acted on, over all its windows (the :attr:`touch_key` counter)."""
        with self._lock:
            return int(self._counters.get(self.touch_key, 0))

    @property
    def windows(self) -> list[dict[str, Any]]:
        """Each armed window: ``armed_ns``, ``disarmed_ns`` (``None`` while armed) and ``touched``."""
        with self._lock:
            return [dict(window) for window in self._windows]

    def summary(self) -> str:
        """One line for a run's report, e.g. ``rpc.error answered 37 calls with -32603``."""
        return f"{self.kind} touched {self.touched} {self.touch_key}"

    def __repr__(self) -> str:
        state = "armed" if self._armed else "disarmed"
        return f"<{self.name} {state}, {self.touched} {self.touch_key}>"
