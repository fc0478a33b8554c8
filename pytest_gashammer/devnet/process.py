"""Child processes that never outlive the test session.

Three layers, because each covers an exit path the others miss:
- the owner's ``stop()`` (fixture teardown, also reached on Ctrl-C through pytest's teardown);
- an ``atexit`` sweep for interpreter exits that skip teardown;
- on Linux, ``PR_SET_PDEATHSIG``: the kernel kills the child when the process that started it
  dies for any reason, ``kill -9`` included. The signal follows the *thread* that forked, not the
  process, so every child is forked by one spawner thread that lives as long as the process:
  whichever thread asks for a devnet, it never dies with that thread.
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
from collections.abc import Sequence
from pathlib import Path
from typing import IO

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
        with _live_lock:
            _live.add(self)

    @property
    def pid(self) -> int:
        return self._process.pid

    def poll(self) -> int | None:
        return self._process.poll()

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
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait(timeout=timeout)
        with contextlib.suppress(OSError):
            self._log.close()
        with _live_lock:
            _live.discard(self)

    def __repr__(self) -> str:
        return f"<ManagedProcess pid={self.pid} {os.path.basename(self.argv[0])}>"


def live_processes() -> list[ManagedProcess]:
    with _live_lock:
        return list(_live)


@atexit.register
def _stop_all() -> None:
    for process in live_processes():
        with contextlib.suppress(Exception):
            process.stop(timeout=2.0)
