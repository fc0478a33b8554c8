"""A Docker daemon for the container tests: the one that answers, or one this test session starts.

When no daemon answers, and this is root on a machine with apt: ``apt-get install -y docker.io``
if ``dockerd`` is missing, then ``dockerd`` is started and waited for (bounded), and stopped at the
end of the session. Without root or apt the container tests skip, saying why. A daemon that was
already running is used and left alone.

Under pytest-xdist each worker runs this for itself; a file lock keeps two from installing or
starting at once, and only the worker that started the daemon stops it (after its own tests: run
the container tests without ``-n``, as the README's test command does, when that matters).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_gashammer.devnet.images import DockerUnavailable, docker_client

#: How long a started dockerd may take to answer (it answered in under a second here).
START_SECONDS = 60.0
STOP_SECONDS = 20.0
INSTALL_SECONDS = 900.0
#: Where Debian's docker.io puts dockerd, looked at when PATH has none (sbin is often off a PATH).
DOCKERD_PATHS = ("/usr/sbin/dockerd", "/usr/bin/dockerd")


class DockerSetupSkipped(Exception):
    """This machine cannot give the tests a daemon; the message says why."""


class DockerSetup:
    """``start()``: a client of an answering daemon (starting one if needed); ``stop()``: what it started."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.gettempdir()) / f"gashammer-dockerd-{os.getpid()}.log"
        self.installed = False

    def start(self) -> Any:
        try:
            return docker_client(timeout=10)
        except DockerUnavailable as exc:
            unavailable = str(exc)
        if os.environ.get("DOCKER_HOST"):
            raise DockerSetupSkipped(f"{unavailable} (DOCKER_HOST is set, so no local daemon is started)")
        if os.geteuid() != 0:
            raise DockerSetupSkipped(f"{unavailable}; not root here, so the tests cannot start one")
        from filelock import FileLock

        with FileLock(os.path.join(tempfile.gettempdir(), "gashammer-dockerd.lock"), timeout=INSTALL_SECONDS):
            with contextlib.suppress(DockerUnavailable):
                return docker_client(timeout=10)  # another worker started it meanwhile
            dockerd = self._find_or_install()
            self._launch(dockerd)
            return self._wait()

    def _find_or_install(self) -> str:
        dockerd = _dockerd()
        if dockerd is not None:
            return dockerd
        apt = shutil.which("apt-get")
        if apt is None:
            raise DockerSetupSkipped(
                "no Docker daemon answers, dockerd is not installed and there is no apt-get"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = [apt, "install", "-y", "-q", "docker.io"]
        completed = subprocess.run(install, capture_output=True, text=True, env=env, timeout=INSTALL_SECONDS)
        if completed.returncode != 0:  # a stale package index: refresh it once
            subprocess.run([apt, "update", "-q"], capture_output=True, env=env, timeout=INSTALL_SECONDS)
            completed = subprocess.run(
                install, capture_output=True, text=True, env=env, timeout=INSTALL_SECONDS
            )
        dockerd = _dockerd()
        if completed.returncode != 0 or dockerd is None:
            reason = (completed.stderr or completed.stdout).strip().splitlines()
            raise DockerSetupSkipped(
                f"apt-get install docker.io failed: {reason[-1] if reason else completed.returncode}"
            )
        self.installed = True
        return dockerd

    def _launch(self, dockerd: str) -> None:
        with open(self.log_path, "wb") as log:
            # Its own session: a Ctrl-C in the terminal reaches pytest, which then stops it here.
            self.process = subprocess.Popen(
                [dockerd],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait(self) -> Any:
        assert self.process is not None
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                return docker_client(timeout=10)
            except DockerUnavailable as exc:
                last = str(exc)
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise DockerSetupSkipped(f"dockerd was started but does not answer ({last}); its log: {tail}")
            time.sleep(0.1)

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-3:])[-400:]

    def stop(self) -> None:
        """SIGTERM the dockerd this started (it stops its containerd and containers), then wait."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_SECONDS)
        with contextlib.suppress(OSError):
            self.log_path.unlink()


def _dockerd() -> str | None:
    return shutil.which("dockerd") or next((path for path in DOCKERD_PATHS if os.access(path, os.X_OK)), None)
