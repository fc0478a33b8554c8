"""Having the plugin installed costs a test session nothing heavy."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "web3",
    "pyarrow",
    "eth_account",
    "aiohttp",
    "websockets",
    "execnet",
    "docker",
    "testcontainers",
    "prometheus_client",
)


def test_importing_the_plugin_imports_no_heavy_dependency() -> None:
    code = (
        "import sys, pytest_gashammer.plugin, pytest_gashammer\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == ""


def test_validating_a_marker_imports_no_heavy_dependency() -> None:
    code = (
        "import sys\n"
        "from pytest_gashammer.scenario import parse_spec, compile_plan\n"
        "spec = parse_spec({'gas_per_sec': '2M', 'workload': {'transfer': 1.0}})\n"
        "compile_plan(spec, name='t', seed=1)\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == ""
