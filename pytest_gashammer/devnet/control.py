"""Node controls: what a fault can do to the node of a devnet the plugin started.

:meth:`Devnet.node_control() <pytest_gashammer.devnet.base.Devnet.node_control>` returns a
:class:`NodeControl` for the devnets the plugin runs (embedded anvil, EthereumJS) and ``None`` for
the others (an external endpoint, a worker's view of the hive's devnet): the plugin does not own
those processes. The fault layer builds on these controls; this module knows nothing of faults.

Operations, by the name in :attr:`NodeControl.supports`:

- ``"pause"``: :meth:`~NodeControl.pause` stops the node process (``SIGSTOP``): it answers nothing
  and builds no block, its sockets stay open and requests wait in them;
  :meth:`~NodeControl.resume` continues it (``SIGCONT``) and the waiting requests are answered.
- ``"restart"``: :meth:`~NodeControl.restart` kills the node (``SIGKILL``, a crash) and starts it
  again on the same ports after ``downtime`` seconds, its chain kept; what each backend keeps and
  forgets is in its control's docstring.
- ``"mining_stop"``: :meth:`~NodeControl.stop_mining`: no block until mining is restored.
- ``"slow_blocks"``: :meth:`~NodeControl.set_block_interval`: a block every ``seconds``.

:meth:`~NodeControl.restore_mining` goes back to the devnet's own block interval, and
:meth:`~NodeControl.undo_all` brings the node back to healthy from whatever a control left it in
(resumed, up, mining at its interval): the fault layer calls it on every exit path. The devnet's
``close()`` calls :meth:`~NodeControl.close`, which continues a paused node and cancels a pending
restart so nothing is left stopped or started behind the session.

The operations are thread-safe (one lock serialises them), idempotent where that makes sense
(pausing a paused node, restoring mining that runs), and compose: a mining change made while the
node is paused or down is applied when it runs again; a restart of a paused node continues it
first. Every operation raises :class:`~pytest_gashammer.errors.DevnetError` when it cannot do its
job, and for an operation the backend does not support.
"""

from __future__ import annotations

import abc
import math
import threading
from collections.abc import Sequence

from pytest_gashammer.errors import DevnetError
from pytest_gashammer.vocabulary import NODE_MINING_STOP as MINING_STOP
from pytest_gashammer.vocabulary import NODE_OPERATIONS
from pytest_gashammer.vocabulary import NODE_PAUSE as PAUSE
from pytest_gashammer.vocabulary import NODE_RESTART as RESTART
from pytest_gashammer.vocabulary import NODE_SLOW_BLOCKS as SLOW_BLOCKS

__all__ = [
    "MINING_STOP",
    "NODE_OPERATIONS",
    "PAUSE",
    "RESTART",
    "SLOW_BLOCKS",
    "NetworkControl",
    "NodeControl",
]


class NodeControl(abc.ABC):
    """Pause, restart and mining controls of one node; see the module docstring.

    The state machine (paused, down, the wanted block interval) lives here once; a backend
    implements the hooks at the end of the class, each called with the lock held.
    """

    #: The operations this control supports, among :data:`NODE_OPERATIONS`.
    supports: frozenset[str] = frozenset()

    def __init__(self, default_interval: float) -> None:
        self.default_interval = float(default_interval)
        self._lock = threading.RLock()
        self._paused = False
        self._down = False
        self._closed = False
        self._interval: float | None = self.default_interval  # None: mining stopped
        self._end_downtime = threading.Event()

    # -- state ----------------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def down(self) -> bool:
        """True from a restart's kill until the node answers again."""
        return self._down

    @property
    def block_interval(self) -> float | None:
        """The block interval the node is told to keep; ``None`` while mining is stopped."""
        return self._interval

    @property
    def healthy(self) -> bool:
        """Running, not paused, mining at the devnet's own interval: what :meth:`undo_all` restores."""
        return not (self._paused or self._down) and self._interval == self.default_interval

    # -- operations -----------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop the node process (``SIGSTOP``). Idempotent."""
        self._require(PAUSE)
        with self._lock:
            self._check_open()
            if self._paused:
                return
            if self._down:
                raise DevnetError("the node is down for a restart; there is no process to pause")
            self._freeze()
            self._paused = True

    def resume(self) -> None:
        """Continue the node process (``SIGCONT``) and its mining as set. Idempotent."""
        self._require(PAUSE)
        with self._lock:
            if self._paused:
                self._continue()

    def restart(self, downtime: float = 0.0) -> None:
        """Kill the node, wait ``downtime`` seconds, start it again on the same ports, chain kept.

        Blocks until the node answers again. :meth:`undo_all` or :meth:`close` from another
        thread cuts the downtime short (``close`` without starting the node). A paused node is
        continued first. Raises :class:`DevnetError` if the node cannot be brought down with its
        state kept (it then runs on, untouched) or does not come back (it then stays down and
        :meth:`undo_all` tries again).
        """
        self._require(RESTART)
        if not (downtime >= 0 and math.isfinite(downtime)):
            raise ValueError(f"downtime must be a finite number of seconds >= 0, got {downtime!r}")
        with self._lock:
            self._check_open()
            if self._down:
                raise DevnetError("the node is already down for a restart")
            if self._paused:
                self._continue()
            self._end_downtime.clear()
            self._crash()
            self._down = True
        self._end_downtime.wait(downtime)
        with self._lock:
            if self._down and not self._closed:
                self._boot_locked()

    def stop_mining(self) -> None:
        """No block until :meth:`restore_mining` (or another interval). Idempotent."""
        self._require(MINING_STOP)
        self._set_interval(None)

    def set_block_interval(self, seconds: float) -> None:
        """A block every ``seconds`` (> 0) until :meth:`restore_mining`."""
        self._require(SLOW_BLOCKS)
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError(f"the block interval must be a finite number of seconds > 0, got {seconds!r}")
        self._set_interval(float(seconds))

    def restore_mining(self) -> None:
        """Mine at the devnet's own block interval again. Idempotent."""
        if not self.supports & {MINING_STOP, SLOW_BLOCKS}:
            return  # nothing here can have changed it
        self._set_interval(self.default_interval)

    def undo_all(self) -> None:
        """Back to healthy from any state: up (ending a downtime now), resumed, mining restored.

        Safe to call at any time, any number of times, from any thread; a no-op on a healthy
        node and after :meth:`close`.
        """
        self._end_downtime.set()
        with self._lock:
            if self._closed:
                return
            if self._down:
                self._boot_locked()
            if self._paused:
                self._continue()
            if self._interval != self.default_interval:
                self._interval = self.default_interval
                self._apply_mining(self._interval)

    def close(self) -> None:
        """For the devnet's ``close()``: continue a paused node so it can be stopped, and cancel a
        pending restart (a node is not started only to be stopped). Later operations raise."""
        self._end_downtime.set()
        with self._lock:
            self._closed = True
            try:
                if self._paused:
                    self._continue()
            finally:
                self._release()

    # -- helpers --------------------------------------------------------------------------------
    def _require(self, operation: str) -> None:
        if operation not in self.supports:
            raise DevnetError(
                f"{type(self).__name__} cannot {operation.replace('_', ' ')}: it supports "
                f"{', '.join(sorted(self.supports)) or 'nothing'}"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise DevnetError("the devnet is closed; its node has no controls any more")

    def _set_interval(self, interval: float | None) -> None:
        with self._lock:
            self._check_open()
            if interval == self._interval:
                return
            self._interval = interval
            if not (self._paused or self._down):
                self._apply_mining(interval)
            # Paused or down: applied by _thaw() / _boot() from self._interval.

    def _continue(self) -> None:
        try:
            self._thaw()
        finally:
            # The process was continued first: a mining change that failed after it leaves a
            # running node, not a paused one.
            self._paused = False

    def _boot_locked(self) -> None:
        self._boot()
        self._down = False

    # -- backend hooks (called with the lock held) ----------------------------------------------
    @abc.abstractmethod
    def _freeze(self) -> None:
        """Stop the node process (and whatever builds its blocks)."""

    @abc.abstractmethod
    def _thaw(self) -> None:
        """Continue the node process, then mine as :attr:`block_interval` says."""

    def _crash(self) -> None:
        """Kill the node with its chain kept for :meth:`_boot`; raise (node untouched) if it cannot be."""
        raise DevnetError(f"{type(self).__name__} cannot restart its node")

    def _boot(self) -> None:
        """Start the node again on its ports, from what :meth:`_crash` kept, mining as set."""
        raise DevnetError(f"{type(self).__name__} cannot restart its node")

    @abc.abstractmethod
    def _apply_mining(self, interval: float | None) -> None:
        """Make the running node mine every ``interval`` seconds, or not at all for ``None``."""

    def _release(self) -> None:  # noqa: B027 - a backend with nothing of its own to stop
        """Stop what the control itself runs (a miner thread), for :meth:`close`."""

    def __repr__(self) -> str:
        state = "down" if self._down else "paused" if self._paused else "running"
        mining = "stopped" if self._interval is None else f"every {self._interval:g} s"
        return f"<{type(self).__name__} {state}, mining {mining}>"


class NetworkControl(abc.ABC):
    """What a fault can do to a multi-node devnet: its links and its nodes.

    Nodes are named (``node0``, ``node1``...). A cut link carries nothing between its two nodes:
    neither devp2p traffic nor the consensus layer's payloads (a node cut off from the builder's
    side gets no new blocks). Every operation raises
    :class:`~pytest_gashammer.errors.DevnetError` with a one-line reason when it cannot be done.
    """

    @abc.abstractmethod
    def node_names(self) -> list[str]:
        """The nodes' names, the builder first."""

    @abc.abstractmethod
    def partition(self, *groups: Sequence[str]) -> None:
        """Cut every link between nodes of different groups; a node in no group is a group of its own."""

    @abc.abstractmethod
    def heal(self) -> None:
        """Restore every link the topology has (undoes :meth:`partition` and :meth:`disconnect`)."""

    @abc.abstractmethod
    def disconnect(self, a: str, b: str) -> None:
        """Cut the link between ``a`` and ``b``."""

    @abc.abstractmethod
    def connect(self, a: str, b: str) -> None:
        """Link ``a`` and ``b`` (again)."""

    @abc.abstractmethod
    def stop(self, name: str) -> None:
        """Stop one node's process (its chain data is kept)."""

    @abc.abstractmethod
    def start(self, name: str) -> None:
        """Start a stopped node again on its ports, with its chain data."""
