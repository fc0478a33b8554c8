"""The HTML report of a real run, loaded in headless Chromium: no console message, every chart in the DOM.

Chromium comes from the Debian package ``chromium``. If it is missing, the test installs it with apt
when it runs as root with apt available (set ``GASHAMMER_INSTALL_CHROMIUM=0`` to forbid that), and
otherwise skips, saying why. ``GASHAMMER_UPDATE_SCREENSHOT=1`` also saves the screenshot as
``docs/report-screenshot.png``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_gashammer.report.html import CHARTS, render_report
from tests.acceptance.test_telemetry_from_a_real_run import run_and_store

pytestmark = pytest.mark.usefixtures("no_new_anvil")

REPO = Path(__file__).resolve().parents[2]
CONSOLE = re.compile(r"CONSOLE[(:]")


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    if os.environ.get("GASHAMMER_INSTALL_CHROMIUM", "1") == "0":
        pytest.skip("chromium is not installed and GASHAMMER_INSTALL_CHROMIUM=0 forbids installing it")
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed (apt-get install chromium), and this is not root with apt")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        completed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
        if completed.returncode != 0:
            pytest.skip(f"could not install chromium: {' '.join(command)}: {completed.stderr.strip()[-300:]}")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("apt-get installed chromium but /usr/bin/chromium is missing")
    return "/usr/bin/chromium"


def chromium(binary: str, profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium, loopback and file:// only: every background service that dials out is off."""
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_report_of_a_real_run_renders_in_chromium_without_console_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = find_chromium()

    # The console check can see console messages at all: a probe page that logs one.
    probe = tmp_path / "probe.html"
    probe.write_text("<!DOCTYPE html><p>probe</p><script>console.error('gashammer-probe')</script>")
    probed = chromium(binary, tmp_path / "profile-probe", "--dump-dom", probe.as_uri())
    assert any(CONSOLE.search(line) and "gashammer-probe" in line for line in probed.stderr.splitlines()), (
        "this chromium does not log console messages to stderr; the check below would prove nothing"
    )

    telemetry = tmp_path / "telemetry"
    stored = run_and_store(
        telemetry,
        monkeypatch,
        {
            "gas_per_sec": "6M",
            "warmup": "1s",
            "ramp": "1s",
            "duration": "5s",
            "cooldown": "1s",
            "workload": {
                "transfer": 3.0,
                "erc20": 1.0,
                "tests.acceptance.templates_for_tests:SometimesTooExpensive": 0.3,
            },
        },
        nodeid="tests/acceptance/test_report_in_browser.py::test_mixed_load",
    )
    assert stored.result.rejected > 0, "the run should have some errors to chart"
    report = render_report(telemetry, tmp_path / "report.html", title="gashammer report")

    loaded = chromium(binary, tmp_path / "profile", "--dump-dom", report.as_uri())
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    console = [line for line in loaded.stderr.splitlines() if CONSOLE.search(line)]
    assert console == [], "the report logged to the console:\n" + "\n".join(console)
    network = [line for line in loaded.stderr.splitlines() if "net::ERR" in line]
    assert network == [], "the report tried to load something:\n" + "\n".join(network)
    dom = loaded.stdout
    assert f'data-run-id="{stored.run_id}"' in dom
    for name, _title in CHARTS:
        figure = re.search(rf'<figure class="chart" id="run-1-chart-{name}".*?</figure>', dom, re.S)
        assert figure is not None, f"chart {name} is missing from the rendered DOM"
        svg = figure.group(0)
        assert "<svg" in svg and ("<path" in svg or "<use" in svg), f"chart {name} has no drawing"

    screenshot = tmp_path / "report.png"
    shot = chromium(
        binary,
        tmp_path / "profile-shot",
        f"--screenshot={screenshot}",
        "--window-size=1400,3000",
        report.as_uri(),
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 50_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("GASHAMMER_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, REPO / "docs" / "report-screenshot.png")
