"""Helpers for acceptance tests: real pytest runs in subprocesses against real anvil devnets."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

ACCEPTANCE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every acceptance test drives a real pytest run or a real node: ``-m "not slow"`` leaves them out."""
    for item in items:
        if ACCEPTANCE in item.path.parents:
            item.add_marker(pytest.mark.slow)


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


def anvil_processes(tag: str) -> set[int]:
    """Running anvil processes whose environment carries ``GASHAMMER_TEST_TAG=tag``.

    The tag is inherited from the test through pytest subprocesses down to anvil, so this finds
    exactly the nodes a test started, whatever else runs on the machine.
    """
    needle = f"GASHAMMER_TEST_TAG={tag}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or process_name(int(entry.name)) != "anvil":
            continue
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environment and alive(int(entry.name)):
            found.add(int(entry.name))
    return found


@pytest.fixture
def no_new_anvil(monkeypatch: pytest.MonkeyPatch):
    """Fails the test if an anvil it started (directly or through a pytest run) is left behind."""
    tag = uuid.uuid4().hex
    monkeypatch.setenv("GASHAMMER_TEST_TAG", tag)
    yield
    deadline = time.monotonic() + 10
    leftover = anvil_processes(tag)
    while leftover and time.monotonic() < deadline:
        time.sleep(0.1)
        leftover = anvil_processes(tag)
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert not leftover, f"anvil processes left running: {sorted(leftover)}"
