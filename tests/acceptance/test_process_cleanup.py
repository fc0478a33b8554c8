"""No anvil (the L2 nor its L1) outlives the pytest run that started it: not after Ctrl-C, SIGTERM or a hard kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.acceptance.conftest import alive, child_pids, process_name

LONG_SCENARIO = """
import pytest

@pytest.mark.gashammer(gas_per_sec="1M", duration="120s", warmup=0)
def test_long(hammer):
    hammer.run()
"""


@pytest.mark.parametrize(
    "how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "sigterm", "kill-9"]
)
def test_killing_pytest_mid_scenario_leaves_no_anvil(pytester: pytest.Pytester, how: signal.Signals) -> None:
    pytester.makepyfile(test_long=LONG_SCENARIO)
    log = pytester.path / "run.log"
    with open(log, "wb") as output:
        run = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "test_long.py"],
            cwd=pytester.path,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        anvil = None
        deadline = time.monotonic() + 60
        while anvil is None and time.monotonic() < deadline:
            anvil = next((pid for pid in child_pids(run.pid) if process_name(pid) == "anvil"), None)
            time.sleep(0.1)
        assert anvil is not None, f"no anvil started: {log.read_text()[-2000:]}"
        time.sleep(4)  # well into the scenario: senders funded, load flowing
        assert run.poll() is None, f"pytest ended early: {log.read_text()[-2000:]}"
        anvils = {pid for pid in child_pids(run.pid) if process_name(pid) == "anvil"}
        assert anvil in anvils and len(anvils) == 2, f"the L2 and its L1: {anvils}"
        os.kill(run.pid, how)
        run.wait(timeout=60)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in anvils) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = sorted(pid for pid in anvils if alive(pid))
        assert not survivors, f"anvil {survivors} survived {how.name} of pytest"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    if how == signal.SIGINT:
        assert "KeyboardInterrupt" in log.read_text()
