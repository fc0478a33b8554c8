"""Child processes that never outlive the test session.

Three layers, because each covers an exit path the others miss:
- the owner's ``stop()`` (fixture teardown, also reached on Ctrl-C through pytest's teardown);
- an ``atexit`` sweep for interpreter exits that skip teardown;
- on Linux, ``PR_SET_PDEATHSIG``: the kernel kills the child when the process that started it
  dies for any reason, ``kill -9`` included. The signal follows the *thread* that forked, not the
  process, so every child is forked by one spawner thread that lives as long as the process:
  whichever thread asks for a devnet, it never dies with that thread.

A child may be stopped on purpose (``SIGSTOP``, a node fault: :meth:`ManagedProcess.pause`). A
stopped process acts on no signal but ``SIGKILL`` until it is continued, and anvil and Node.js
catch ``SIGTERM`` to shut down cleanly, so :meth:`ManagedProcess.stop` continues the child after
asking it to terminate (without that it would wait out its timeout, then kill), and the ``atexit``
sweep continues every child before stopping any. The kernel's ``SIGKILL`` on parent death needs
no help: it ends a stopped process too (tests/acceptance/test_node_controls.py checks it).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Protocol

_live: set[ManagedProcess] = set()
# One long-lived thread forks every child (see the module docstring); an idle executor thread stays.
_spawner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gashammer-spawner")
_live_lock = threading.Lock()


def _parent_death_signal() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


class ProcessHandle(Protocol):
    """What the plugin does with a node's process: a :class:`ManagedProcess` here, or a
    :class:`~pytest_gashammer.devnet.container.ContainerProcess` in a container."""

    log_path: Path

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def kill(self, timeout: float = 5.0) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...

    def log_tail(self, limit: int = 2000) -> str: ...


class ManagedProcess:
    """A subprocess with its output in a log file, stopped on every exit path."""

    def __init__(self, argv: Sequence[str], *, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._process = _spawner.submit(
            subprocess.Popen,
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C in the terminal reaches pytest only; pytest stops us
            preexec_fn=_parent_death_signal if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        ).result()
        self._paused = False
        with _live_lock:
            _live.add(self)

    @property
    def pid(self) -> int:
        return self._process.pid

    def poll(self) -> int | None:
        return self._process.poll()

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume` (what this object did, not what others sent)."""
        return self._paused

    def pause(self, timeout: float = 2.0) -> None:
        """``SIGSTOP``: the child stops running until :meth:`resume`. Idempotent.

        The signal is delivered asynchronously; on Linux this returns once every thread of the
        child is stopped (or ``timeout`` passed), so the caller's next step sees a stopped node.
        """
        if not self._signal(signal.SIGSTOP):
            return
        self._paused = True
        deadline = time.monotonic() + timeout
        while not _stopped(self.pid) and time.monotonic() < deadline and self._process.poll() is None:
            time.sleep(0.002)

    def resume(self) -> None:
        """``SIGCONT``, sent even when this object did not stop the child. Idempotent."""
        self._signal(signal.SIGCONT)
        self._paused = False

    def kill(self, timeout: float = 5.0) -> None:
        """``SIGKILL`` at once, a crash: the child saves nothing. Waits for it and releases its log."""
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            self._process.wait(timeout=timeout)
        self._paused = False
        self._release()

    def _signal(self, signum: int) -> bool:
        if self._process.poll() is not None:
            return False
        try:
            self._process.send_signal(signum)
        except ProcessLookupError:
            return False
        return True

    def log_tail(self, limit: int = 2000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-limit:].decode(errors="replace")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``. Idempotent."""
        process = self._process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
                # A stopped child would hold SIGTERM pending until the timeout's SIGKILL.
                process.send_signal(signal.SIGCONT)
            self._paused = False
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait(timeout=timeout)
        self._release()

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            self._log.close()
        with _live_lock:
            _live.discard(self)

    def __repr__(self) -> str:
        return f"<ManagedProcess pid={self.pid} {os.path.basename(self.argv[0])}>"


def _stopped(pid: int) -> bool:
    """Every thread of ``pid`` is stopped (state ``T``); True where /proc cannot tell."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return True
    for task in tasks:
        try:
            state = (task / "stat").read_text().rsplit(") ", 1)[1][:1]
        except (OSError, IndexError):
            continue  # the thread ended
        if state not in ("T", "t"):
            return False
    return True


def live_processes() -> list[ManagedProcess]:
    with _live_lock:
        return list(_live)


@atexit.register
def _stop_all() -> None:
    processes = live_processes()
    # Continue every child first: one left stopped by a fault would otherwise keep its SIGTERM
    # pending through its whole timeout while the others wait their turn.
    for process in processes:
        with contextlib.suppress(Exception):
            process.resume()
    for process in processes:
        with contextlib.suppress(Exception):
            process.stop(timeout=2.0)
