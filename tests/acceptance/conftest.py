"""Helpers for acceptance tests: real pytest runs in subprocesses against real anvil devnets."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(autouse=True, scope="session")
def shared_tool_cache() -> Iterator[None]:
    """One cache of managed tools (anvil, the Nitro contracts, solc) for every pytest run the suite drives.

    ``pytester`` gives each run a HOME of its own, so without this every run that starts a devnet would
    install anvil and the Nitro contracts from npm again (seconds each, and the registry each time).
    """
    from pytest_gashammer.devnet.npm import cache_dir

    before = os.environ.get("GASHAMMER_CACHE_DIR")
    os.environ["GASHAMMER_CACHE_DIR"] = str(cache_dir())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GASHAMMER_CACHE_DIR", None)
        else:
            os.environ["GASHAMMER_CACHE_DIR"] = before


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


def process_state(pid: int) -> str:
    """One letter: R, S, T (stopped), Z (zombie)...; '' when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (OSError, IndexError):
        return ""


def node_outlives_a_sigkilled_pytest(pytester: pytest.Pytester, source: str, prefix: str) -> str:
    """Run ``source`` as a pytest session in its own process group; once it prints ``<prefix> <pid>``
    and that process is stopped (state T), SIGKILL pytest. Returns the state the node process is in
    10 s later at the most: '' or 'Z' when it died with pytest."""
    pytester.makepyfile(test_inner=source)
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "-q", "test_inner.py"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pid = None
    output: list[str] = []
    try:
        assert run.stdout is not None
        for raw in run.stdout:
            line = raw.decode(errors="replace")
            output.append(line)
            if line.startswith(prefix + " "):
                pid = int(line.split()[1])
                break
        assert pid is not None, "".join(output)[-2000:]
        deadline = time.monotonic() + 60
        while process_state(pid) != "T":
            assert time.monotonic() < deadline, f"the node was never stopped: {''.join(output)[-1000:]}"
            time.sleep(0.05)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        deadline = time.monotonic() + 10
        while process_state(pid) not in ("", "Z") and time.monotonic() < deadline:
            time.sleep(0.05)
        return process_state(pid)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if pid is not None and process_state(pid) not in ("", "Z"):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[Any]:
    """A client of an answering Docker daemon: the running one, or one this session installs and
    starts as root (stopped at the end); the test skips, saying why, where neither can be had."""
    from tests.acceptance.docker_setup import DockerSetup, DockerSetupSkipped

    setup = DockerSetup()
    try:
        client = setup.start()
    except DockerSetupSkipped as exc:
        pytest.skip(str(exc))
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()
        setup.stop()


@pytest.fixture(scope="session")
def anvil_image(docker_daemon: Any) -> str:
    """The plugin's locally built anvil image (built once; later sessions find it current)."""
    from pytest_gashammer.devnet.images import ensure_anvil_image

    return ensure_anvil_image(docker_daemon)
