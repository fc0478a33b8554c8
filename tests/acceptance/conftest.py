"""Helpers for acceptance tests: real pytest runs in subprocesses against real anvil devnets."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest


def child_pids(parent: int) -> list[int]:
    """Direct children of ``parent`` (Linux /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == parent:
                children.append(int(entry.name))
    return children


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def anvil_processes() -> set[int]:
    return {
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and process_name(int(entry.name)) == "anvil"
    }


@pytest.fixture
def no_new_anvil():
    """Fails the test if it leaves an anvil process behind."""
    before = anvil_processes()
    yield
    deadline = time.monotonic() + 10
    leftover = anvil_processes() - before
    while leftover and time.monotonic() < deadline:
        time.sleep(0.1)
        leftover = {pid for pid in anvil_processes() - before if alive(pid)}
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert not leftover, f"anvil processes left running: {sorted(leftover)}"
