"""Node controls without a node: the state machine every backend shares, the process signals,
the consensus driver's pace, and which devnets have controls at all."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from pytest_gashammer.chain.engine import EngineClient
from pytest_gashammer.devnet.base import SharedDevnet
from pytest_gashammer.devnet.consensus import ConsensusDriver, Head
from pytest_gashammer.devnet.control import (
    MINING_STOP,
    NODE_OPERATIONS,
    PAUSE,
    RESTART,
    SLOW_BLOCKS,
    NodeControl,
)
from pytest_gashammer.devnet.process import ManagedProcess, live_processes
from pytest_gashammer.errors import DevnetError

DEFAULT = 0.25


class FakeControl(NodeControl):
    """Records each hook call; ``fail`` names hooks that raise."""

    def __init__(self, supports: frozenset[str] = NODE_OPERATIONS) -> None:
        super().__init__(DEFAULT)
        self.supports = supports
        self.calls: list[tuple[str, object]] = []
        self.fail: set[str] = set()

    def _hook(self, name: str, arg: object = None) -> None:
        self.calls.append((name, arg))
        if name in self.fail:
            raise DevnetError(f"{name} failed")

    def _freeze(self) -> None:
        self._hook("freeze")

    def _thaw(self) -> None:
        self._hook("thaw", self._interval)

    def _crash(self) -> None:
        self._hook("crash")

    def _boot(self) -> None:
        self._hook("boot", self._interval)

    def _apply_mining(self, interval: float | None) -> None:
        self._hook("mining", interval)

    def _release(self) -> None:
        self._hook("release")


def names(control: FakeControl) -> list[str]:
    return [name for name, _ in control.calls]


def test_the_operations_are_named_once() -> None:
    assert {PAUSE, RESTART, MINING_STOP, SLOW_BLOCKS} == NODE_OPERATIONS
    assert {"pause", "restart", "mining_stop", "slow_blocks"} == NODE_OPERATIONS


def test_pause_and_resume_are_idempotent() -> None:
    control = FakeControl()
    control.pause()
    control.pause()
    assert control.paused and not control.healthy
    control.resume()
    control.resume()
    assert names(control) == ["freeze", "thaw"]
    assert control.healthy


def test_an_unsupported_operation_is_refused_with_what_is_supported() -> None:
    control = FakeControl(frozenset({PAUSE}))
    with pytest.raises(DevnetError, match=r"cannot restart: it supports pause"):
        control.restart()
    with pytest.raises(DevnetError, match="cannot mining stop"):
        control.stop_mining()
    with pytest.raises(DevnetError, match="cannot slow blocks"):
        control.set_block_interval(1.0)
    control.restore_mining()  # nothing could have changed it: no call, no error
    assert control.calls == []


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan")])
def test_an_interval_must_be_a_positive_finite_number(bad: float) -> None:
    with pytest.raises(ValueError, match="block interval"):
        FakeControl().set_block_interval(bad)


@pytest.mark.parametrize("bad", [-0.1, float("inf"), float("nan")])
def test_a_downtime_must_be_finite_and_not_negative(bad: float) -> None:
    with pytest.raises(ValueError, match="downtime"):
        FakeControl().restart(bad)


def test_mining_changes_apply_at_once_and_restore_is_idempotent() -> None:
    control = FakeControl()
    control.stop_mining()
    control.stop_mining()
    assert control.block_interval is None
    control.set_block_interval(2.0)
    control.restore_mining()
    control.restore_mining()
    assert control.calls == [("mining", None), ("mining", 2.0), ("mining", DEFAULT)]
    assert control.healthy


def test_a_mining_change_while_paused_waits_for_the_resume() -> None:
    control = FakeControl()
    control.pause()
    control.set_block_interval(3.0)
    assert names(control) == ["freeze"]
    control.resume()
    assert control.calls[-1] == ("thaw", 3.0)


def test_a_restart_of_a_paused_node_continues_it_first_and_boots_with_the_mining_set() -> None:
    control = FakeControl()
    control.stop_mining()
    control.pause()
    control.restart()
    assert control.calls == [
        ("mining", None),
        ("freeze", None),
        ("thaw", None),
        ("crash", None),
        ("boot", None),
    ]
    assert not (control.paused or control.down)
    assert control.block_interval is None


def test_undo_all_ends_a_downtime_at_once_and_restores_everything() -> None:
    control = FakeControl()
    control.set_block_interval(5.0)
    restarting = threading.Thread(target=control.restart, args=(60.0,))
    started = time.monotonic()
    restarting.start()
    deadline = time.monotonic() + 5
    while not control.down and time.monotonic() < deadline:
        time.sleep(0.01)
    assert control.down
    with pytest.raises(DevnetError, match="down for a restart"):
        control.pause()
    with pytest.raises(DevnetError, match="already down"):
        control.restart()
    control.undo_all()
    restarting.join(5)
    assert not restarting.is_alive() and time.monotonic() - started < 5
    # One boot only: the restart's own thread finds the node up.
    assert names(control) == ["mining", "crash", "boot", "mining"]
    assert control.calls[-1] == ("mining", DEFAULT)
    assert control.healthy


def test_undo_all_from_paused_with_mining_stopped() -> None:
    control = FakeControl()
    control.stop_mining()
    control.pause()
    control.undo_all()
    assert control.healthy
    assert control.calls[-2:] == [("thaw", None), ("mining", DEFAULT)]
    calls = len(control.calls)
    control.undo_all()  # healthy: nothing to do
    assert len(control.calls) == calls


def test_a_failed_crash_leaves_the_node_up_and_a_failed_boot_leaves_it_down_for_undo_all() -> None:
    control = FakeControl()
    control.fail = {"crash"}
    with pytest.raises(DevnetError, match="crash failed"):
        control.restart()
    assert not control.down
    control.fail = {"boot"}
    with pytest.raises(DevnetError, match="boot failed"):
        control.restart()
    assert control.down
    with pytest.raises(DevnetError, match="boot failed"):
        control.undo_all()
    control.fail = set()
    control.undo_all()
    assert control.healthy and names(control)[-1] == "boot"


def test_close_resumes_and_cancels_a_pending_restart_without_booting() -> None:
    control = FakeControl()
    restarting = threading.Thread(target=control.restart, args=(60.0,))
    restarting.start()
    deadline = time.monotonic() + 5
    while not control.down and time.monotonic() < deadline:
        time.sleep(0.01)
    control.close()
    restarting.join(5)
    assert not restarting.is_alive()
    assert "boot" not in names(control) and names(control)[-1] == "release"
    with pytest.raises(DevnetError, match="closed"):
        control.pause()
    control.undo_all()  # after close: a no-op, not an error


def test_close_continues_a_paused_node() -> None:
    control = FakeControl()
    control.pause()
    control.close()
    assert not control.paused and names(control) == ["freeze", "thaw", "release"]


def test_devnets_the_plugin_does_not_run_have_no_controls() -> None:
    shared = SharedDevnet(
        {
            "kind": "embedded",
            "rpc_url": "http://127.0.0.1:1",
            "chain_id": 1,
            "funder_address": "0x" + "00" * 20,
            "funder_key": "0x" + "11" * 32,
        }
    )
    assert shared.node_control() is None


# -- processes ----------------------------------------------------------------------------------

# A child that, like anvil and Node.js, catches SIGTERM to shut down cleanly.
CATCHES_SIGTERM = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); time.sleep(60)"
)


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_paused_child_is_stopped_and_stop_ends_it_without_waiting_out_the_timeout(tmp_path: Path) -> None:
    process = ManagedProcess([sys.executable, "-c", CATCHES_SIGTERM], log_path=tmp_path / "child.log")
    try:
        time.sleep(0.3)  # the handler is installed
        process.pause()
        process.pause()
        assert process.paused
        deadline = time.monotonic() + 5
        while process_state(process.pid) != "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert process_state(process.pid) == "T"
        started = time.monotonic()
        process.stop(timeout=5.0)
        assert time.monotonic() - started < 2.0, "SIGTERM sat pending in the stopped child"
        assert process.poll() == 0, "the child's own SIGTERM handler did not run"
        assert process not in live_processes()
    finally:
        process.kill()


def test_kill_ends_a_paused_child_at_once(tmp_path: Path) -> None:
    process = ManagedProcess([sys.executable, "-c", CATCHES_SIGTERM], log_path=tmp_path / "child.log")
    process.pause()
    process.kill()
    assert process.poll() is not None and not process.paused
    assert process not in live_processes()
    process.resume()  # on a dead child: nothing, no error


# -- the consensus driver's pace ------------------------------------------------------------------


class TimedDriver(ConsensusDriver):
    """A driver whose blocks are instants on a list: no node, no Engine API."""

    def __init__(self, interval: float) -> None:
        super().__init__(
            EngineClient("http://127.0.0.1:1", b"\0" * 32), "http://127.0.0.1:1", interval=interval
        )
        self.times: list[float] = []

    def _read_head(self) -> Head:
        return Head(0, "0x" + "00" * 32, 0)

    def _build_locked(self) -> Head:
        self.times.append(time.monotonic())
        return Head(len(self.times), "0x" + "00" * 32, len(self.times))


def intervals(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in zip(times, times[1:], strict=False)]


def test_the_driver_takes_a_new_interval_from_the_next_tick() -> None:
    driver = TimedDriver(0.05).start()
    try:
        time.sleep(0.3)
        driver.set_interval(0.2)
        changed = time.monotonic()
        time.sleep(0.9)
        slow = [t for t in driver.times if t > changed + 0.06]
        driver.set_interval(0.05)
        # Shortened from a long interval: the wait for the old tick ends at once.
        driver.set_interval(10.0)
        time.sleep(0.05)
        driver.set_interval(0.05)
        back = time.monotonic()
        time.sleep(0.2)
    finally:
        assert driver.stop(2.0)
    assert len(slow) >= 3
    assert all(0.17 < gap < 0.3 for gap in intervals(slow)), intervals(slow)
    assert any(back < t < back + 0.1 for t in driver.times), "the shorter interval waited for the old tick"
    with pytest.raises(ValueError, match="greater than zero"):
        driver.set_interval(0)
