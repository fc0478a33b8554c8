"""Who owns a container, and the sweep that removes containers whose owner is gone.

Testcontainers' reaper (Ryuk) is itself an image pulled from a registry, so the plugin does not use
it. Every container the plugin starts carries labels naming its owner instead: this pytest run's
id, the owning process's pid, that process's start time (so a reused pid is not mistaken for the
owner) and the host name. The owner removes its containers when the devnet closes, and an
``atexit`` hook does so on interpreter exits that skip teardown. Neither runs when pytest is killed
with ``SIGKILL``; for that, each owning process also leaves a small record file under the cache
directory while it has containers, and the next pytest session that starts checks those records
(standard library only, no Docker connection unless a record names a dead owner) and then sweeps:
every container labelled with an owner that is gone is removed. A container backend also sweeps
when it opens.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_gashammer.devnet.npm import cache_dir

LABEL_RUN = "gashammer.run"
LABEL_OWNER_PID = "gashammer.owner_pid"
LABEL_OWNER_START = "gashammer.owner_start"
LABEL_OWNER_HOST = "gashammer.owner_host"

#: This process's pytest run (one per process: an xdist controller owns the session's containers).
RUN_ID = uuid.uuid4().hex[:16]

logger = logging.getLogger(__name__)
_records_lock = threading.Lock()


def process_start_time(pid: int) -> str:
    """The start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22); '' if unknown.

    With the pid it tells a process apart from a later one that got the same pid.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def owner_labels(run_id: str = RUN_ID) -> dict[str, str]:
    """The labels that make this process the owner of a container."""
    pid = os.getpid()
    return {
        LABEL_RUN: run_id,
        LABEL_OWNER_PID: str(pid),
        LABEL_OWNER_START: process_start_time(pid),
        LABEL_OWNER_HOST: socket.gethostname(),
    }


def owner_alive(pid: int, start_time: str) -> bool:
    """Whether the process ``pid`` that started at ``start_time`` still runs (a zombie does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    stat_path = Path(f"/proc/{pid}/stat")
    if not stat_path.parent.exists():
        return True  # no /proc here: the pid is all there is to go by
    try:
        state = stat_path.read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        return False
    return not start_time or process_start_time(pid) == start_time


def orphaned(labels: dict[str, str], host: str | None = None) -> bool:
    """A container with these labels belongs to a process of this host that is gone."""
    if labels.get(LABEL_OWNER_HOST, "") != (host or socket.gethostname()):
        return False  # another machine's process (same daemon): not ours to judge
    try:
        pid = int(labels.get(LABEL_OWNER_PID, ""))
    except ValueError:
        return False
    return not owner_alive(pid, labels.get(LABEL_OWNER_START, ""))


# ----------------------------------------------------------------------------------------------
# record files: a cheap "is there anything to sweep?" for every session start


def records_dir() -> Path:
    return cache_dir() / "containers"


def _record_path(pid: int, start_time: str) -> Path:
    return records_dir() / f"{socket.gethostname()}-{pid}-{start_time or 'x'}.owner"


_recorded: Path | None = None


def record_owner() -> None:
    """Leave this process's record (it owns containers now)."""
    global _recorded
    with _records_lock:
        path = _record_path(os.getpid(), process_start_time(os.getpid()))
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            _recorded = path


def forget_owner() -> None:
    """Remove this process's record (it owns no container any more)."""
    global _recorded
    with _records_lock:
        if _recorded is not None:
            _recorded.unlink(missing_ok=True)
            _recorded = None


def dead_records() -> list[Path]:
    """Records of this host's processes that are gone (their containers may be left)."""
    prefix = socket.gethostname() + "-"
    dead = []
    try:
        paths = list(records_dir().glob("*.owner"))
    except OSError:
        return []
    for path in paths:
        if not path.name.startswith(prefix):
            continue
        pid_text, _, start = path.name[len(prefix) : -len(".owner")].partition("-")
        try:
            pid = int(pid_text)
        except ValueError:
            continue
        if not owner_alive(pid, "" if start == "x" else start):
            dead.append(path)
    return dead


def sweep(client: Any, *, save_logs: Callable[[Any], None] | None = None) -> list[str]:
    """Remove every container of this host whose owner is gone; the names removed."""
    import docker

    removed: list[str] = []
    try:
        containers = client.containers.list(all=True, filters={"label": LABEL_OWNER_PID})
    except docker.errors.APIError as exc:
        logger.warning("container sweep: Docker did not list containers: %s", exc)
        return removed
    host = socket.gethostname()
    for container in containers:
        if not orphaned(dict(container.labels or {}), host):
            continue
        if save_logs is not None:
            with contextlib.suppress(Exception):
                save_logs(container)
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass  # removed by someone else meanwhile
        except docker.errors.APIError as exc:
            logger.warning("container sweep: could not remove %s: %s", container.name, exc)
            continue
        removed.append(str(container.name))
        logger.info("container sweep: removed %s (its pytest process is gone)", container.name)
    return removed


def sweep_if_recorded() -> list[str]:
    """At a session's start: sweep only when a record names a dead owner. Never raises.

    Costs a directory listing when nothing was left behind; connects to Docker otherwise. A record is
    removed once a sweep ran (a daemon that does not answer keeps it for the next session).
    """
    dead = dead_records()
    if not dead:
        return []
    try:
        from pytest_gashammer.devnet.images import docker_client

        client = docker_client(timeout=5)
    except Exception as exc:  # a session start must never fail on a leftover
        logger.info("container sweep postponed: %s", exc)
        return []
    try:
        removed = sweep(client)
    finally:
        with contextlib.suppress(Exception):
            client.close()
    for path in dead:
        path.unlink(missing_ok=True)
    return removed
