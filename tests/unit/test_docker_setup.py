"""The container tests' Docker setup, without touching the machine's Docker: install, skip reasons."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.acceptance import docker_setup
from tests.acceptance.docker_setup import DockerSetup, DockerSetupSkipped

CHMOD = shutil.which("chmod")  # before the tests empty PATH
FAKE_APT = """#!/bin/sh
echo "$@" >> "{log}"
if [ "$1" = install ]; then
  printf '#!/bin/sh\\nexit 0\\n' > "{bin}/dockerd"
  "{chmod}" +x "{bin}/dockerd"
fi
"""


@pytest.fixture
def no_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No daemon answers, no dockerd anywhere; PATH holds only tmp_path/bin."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(docker_setup, "DOCKERD_PATHS", ())
    return bin_dir


def test_a_missing_dockerd_is_installed_with_apt(no_daemon: Path, tmp_path: Path) -> None:
    log = tmp_path / "apt.log"
    apt = no_daemon / "apt-get"
    apt.write_text(FAKE_APT.format(log=log, bin=no_daemon, chmod=CHMOD))
    apt.chmod(0o755)
    setup = DockerSetup()
    assert setup._find_or_install() == str(no_daemon / "dockerd")
    assert setup.installed
    assert log.read_text().splitlines() == ["install -y -q docker.io"]


def test_without_apt_the_tests_skip_saying_why(no_daemon: Path) -> None:
    with pytest.raises(DockerSetupSkipped, match="dockerd is not installed and there is no apt-get"):
        DockerSetup()._find_or_install()


def test_an_installed_dockerd_is_not_installed_again(no_daemon: Path) -> None:
    dockerd = no_daemon / "dockerd"
    dockerd.write_text("#!/bin/sh\n")
    dockerd.chmod(0o755)
    setup = DockerSetup()
    assert setup._find_or_install() == str(dockerd) and not setup.installed


def test_not_root_or_a_remote_docker_host_skips_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(DockerSetupSkipped, match="DOCKER_HOST is set, so no local daemon is started"):
        DockerSetup().start()
    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    from pytest_gashammer.devnet import images

    def unavailable(timeout: float = 0) -> None:
        raise images.DockerUnavailable("no Docker daemon answers at unix:///var/run/docker.sock (gone)")

    monkeypatch.setattr(docker_setup, "docker_client", unavailable)
    with pytest.raises(DockerSetupSkipped, match=r"\(gone\); not root here, so the tests cannot start one"):
        DockerSetup().start()


def test_a_dockerd_that_never_answers_is_stopped_and_skips_with_its_log(
    no_daemon: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dockerd = no_daemon / "dockerd"
    dockerd.write_text("#!/bin/sh\necho 'failed to start: no cgroups'\nexit 1\n")
    dockerd.chmod(0o755)
    from pytest_gashammer.devnet import images

    def unavailable(timeout: float = 0) -> None:
        raise images.DockerUnavailable("no Docker daemon answers")

    monkeypatch.setattr(docker_setup, "docker_client", unavailable)
    setup = DockerSetup()
    setup._launch(str(dockerd))
    with pytest.raises(DockerSetupSkipped, match="its log: failed to start: no cgroups"):
        setup._wait()
    assert setup.process is None
