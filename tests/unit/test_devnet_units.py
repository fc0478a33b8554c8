"""Devnet safety checks, funder keys, finding anvil, and the identity sent with every request."""

from __future__ import annotations

import importlib.metadata
import platform
import re
import sys
from pathlib import Path

import pytest
from eth_account import Account

from pytest_gashammer import _version
from pytest_gashammer.devnet import anvil
from pytest_gashammer.devnet.base import NITRO_DEV_ADDRESS, NITRO_DEV_KEY
from pytest_gashammer.devnet.external import check_chain_id, funder_from_key
from pytest_gashammer.errors import DevnetError, GashammerError

# ----------------------------------------------------------------------------------------------
# chain id safety


@pytest.mark.parametrize(("chain_id", "name"), [(1, "Ethereum"), (42161, "Arbitrum One"), (8453, "Base")])
def test_mainnet_chain_ids_are_refused_with_the_way_to_allow_them(chain_id: int, name: str) -> None:
    with pytest.raises(DevnetError) as info:
        check_chain_id(chain_id, expected=None, allowed=set())
    message = str(info.value)
    assert name in message
    assert f"--gashammer-allow-chain-id {chain_id}" in message
    assert "\n" not in message


@pytest.mark.parametrize("chain_id", [1, 42161, 8453])
def test_an_explicitly_allowed_mainnet_is_accepted(chain_id: int) -> None:
    check_chain_id(chain_id, expected=None, allowed={chain_id})
    check_chain_id(chain_id, expected=chain_id, allowed={chain_id, 10})


def test_allowing_one_mainnet_does_not_allow_another() -> None:
    with pytest.raises(DevnetError, match="Arbitrum One"):
        check_chain_id(42161, expected=None, allowed={1})


@pytest.mark.parametrize("chain_id", [412346, 31337, 1337, 11155111])
def test_devnet_and_testnet_chain_ids_need_no_permission(chain_id: int) -> None:
    check_chain_id(chain_id, expected=None, allowed=set())


def test_a_chain_id_other_than_the_expected_one_is_refused() -> None:
    with pytest.raises(DevnetError) as info:
        check_chain_id(412346, expected=31337, allowed=set())
    message = str(info.value)
    assert "412346" in message and "31337" in message
    assert "--gashammer-chain-id" in message


def test_the_expected_chain_id_passes() -> None:
    check_chain_id(31337, expected=31337, allowed=set())


# ----------------------------------------------------------------------------------------------
# funder key


def test_funder_from_key_derives_the_address_with_or_without_0x() -> None:
    with_prefix = funder_from_key(NITRO_DEV_KEY)
    without_prefix = funder_from_key(NITRO_DEV_KEY[2:])
    assert with_prefix.address == NITRO_DEV_ADDRESS
    assert without_prefix == with_prefix
    assert with_prefix.key == NITRO_DEV_KEY.lower()


def test_funder_from_key_tolerates_surrounding_whitespace() -> None:
    key = "0x" + "11" * 32
    funder = funder_from_key(f"  {key}\n")
    assert funder.address == Account.from_key(key).address
    assert funder.key == key


@pytest.mark.parametrize(
    "key",
    ["garbage", "", "0x", "0x1234", "11" * 31, "11" * 33, "zz" * 32, "0x" + "00" * 32, "0x" + "ff" * 32],
)
def test_bad_funder_key_is_a_one_line_error_that_does_not_echo_the_key(key: str) -> None:
    with pytest.raises(DevnetError) as info:
        funder_from_key(key)
    message = str(info.value)
    assert "--gashammer-funder-key" in message
    assert "64 hex digits" in message
    assert "\n" not in message
    if len(key) > 8:
        assert key.removeprefix("0x") not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_funder_repr_hides_the_key() -> None:
    funder = funder_from_key(NITRO_DEV_KEY)
    for text in (repr(funder), str(funder), f"{funder!r}"):
        assert NITRO_DEV_KEY[2:] not in text.lower()
        assert NITRO_DEV_ADDRESS in text
    assert NITRO_DEV_KEY[2:] not in repr([funder])


def test_devnet_error_is_a_gashammer_error() -> None:
    assert issubclass(DevnetError, GashammerError)


# ----------------------------------------------------------------------------------------------
# finding anvil


@pytest.fixture
def no_anvil_anywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No anvil on PATH, no GASHAMMER_ANVIL, an empty cache on a linux/x86_64 machine."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("GASHAMMER_ANVIL", raising=False)
    monkeypatch.setenv("GASHAMMER_CACHE_DIR", str(cache))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    return cache


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho anvil\n")
    path.chmod(0o755)
    return path


def test_explicit_anvil_that_does_not_exist_names_the_option(no_anvil_anywhere: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "anvil"
    with pytest.raises(DevnetError) as info:
        anvil.find_anvil(str(missing))
    message = str(info.value)
    assert "--gashammer-anvil" in message
    assert str(missing) in message


def test_explicit_anvil_that_is_not_executable_is_refused(no_anvil_anywhere: Path, tmp_path: Path) -> None:
    plain = tmp_path / "anvil"
    plain.write_text("not a program")
    plain.chmod(0o644)
    with pytest.raises(DevnetError, match="not an executable file"):
        anvil.find_anvil(str(plain))


def test_explicit_anvil_directory_is_refused(no_anvil_anywhere: Path, tmp_path: Path) -> None:
    with pytest.raises(DevnetError, match="--gashammer-anvil"):
        anvil.find_anvil(str(tmp_path))


def test_explicit_executable_anvil_is_used(no_anvil_anywhere: Path, tmp_path: Path) -> None:
    binary = executable(tmp_path / "bin" / "anvil")
    assert anvil.find_anvil(str(binary)) == binary


def test_gashammer_anvil_environment_variable_is_used(
    no_anvil_anywhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = executable(tmp_path / "bin" / "anvil")
    monkeypatch.setenv("GASHAMMER_ANVIL", str(binary))
    assert anvil.find_anvil() == binary


def test_anvil_on_path_is_used(
    no_anvil_anywhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = executable(tmp_path / "tools" / "anvil")
    monkeypatch.setenv("PATH", str(binary.parent))
    assert anvil.find_anvil(install=False) == binary


def test_a_managed_install_in_the_cache_is_found_without_installing(no_anvil_anywhere: Path) -> None:
    binary = executable(
        no_anvil_anywhere
        / f"anvil-{anvil.ANVIL_VERSION}"
        / "node_modules"
        / "@foundry-rs"
        / "anvil-linux-amd64"
        / "bin"
        / "anvil"
    )
    assert anvil.find_anvil(install=False) == binary


def test_no_anvil_and_no_install_says_how_to_get_one(no_anvil_anywhere: Path) -> None:
    with pytest.raises(DevnetError) as info:
        anvil.find_anvil(install=False)
    message = str(info.value)
    assert "npm" in message
    assert "--gashammer-anvil" in message
    assert "\n" not in message
    assert list(no_anvil_anywhere.iterdir()) == []  # nothing was installed


def test_cache_dir_honours_gashammer_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GASHAMMER_CACHE_DIR", str(tmp_path / "mine"))
    assert anvil.cache_dir() == tmp_path / "mine"


def test_cache_dir_defaults_to_the_xdg_cache_on_linux(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GASHAMMER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(sys, "platform", "linux")
    assert anvil.cache_dir() == tmp_path / "xdg" / "pytest-gashammer"


@pytest.mark.parametrize(
    ("system", "machine", "expected"),
    [
        ("linux", "x86_64", ("@foundry-rs/anvil-linux-amd64", "anvil")),
        ("linux", "aarch64", ("@foundry-rs/anvil-linux-arm64", "anvil")),
        ("darwin", "arm64", ("@foundry-rs/anvil-darwin-arm64", "anvil")),
        ("darwin", "x86_64", ("@foundry-rs/anvil-darwin-amd64", "anvil")),
        ("win32", "AMD64", ("@foundry-rs/anvil-win32-amd64", "anvil.exe")),
    ],
)
def test_platform_package(
    monkeypatch: pytest.MonkeyPatch, system: str, machine: str, expected: tuple[str, str]
) -> None:
    monkeypatch.setattr(sys, "platform", system)
    monkeypatch.setattr(platform, "machine", lambda: machine)
    assert anvil.platform_package() == expected


@pytest.mark.parametrize(
    ("system", "machine"), [("linux", "riscv64"), ("freebsd14", "x86_64"), ("win32", "ARM64")]
)
def test_platform_without_a_prebuilt_anvil_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, system: str, machine: str
) -> None:
    monkeypatch.setattr(sys, "platform", system)
    monkeypatch.setattr(platform, "machine", lambda: machine)
    with pytest.raises(DevnetError) as info:
        anvil.platform_package()
    assert f"{system}/{machine}".lower() in str(info.value).lower()
    assert "--gashammer-anvil" in str(info.value)


# ----------------------------------------------------------------------------------------------
# request identity


@pytest.fixture
def stamped_build(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GASHAMMER_BUILD_SHA", "0123456789ab")
    _version.build_sha.cache_clear()
    yield "0123456789ab"
    _version.build_sha.cache_clear()


def test_request_headers_identify_gashammer(stamped_build: str) -> None:
    headers = _version.request_headers()
    version = importlib.metadata.version("pytest-gashammer")
    assert headers == {
        "User-Agent": f"GasHammer/{version} ({stamped_build})",
        "X-Powered-By": f"GasHammer/{version}",
        "X-GasHammer-Version": version,
        "X-GasHammer-Build": stamped_build,
    }


def test_request_header_values_are_well_formed(stamped_build: str) -> None:
    headers = _version.request_headers()
    assert re.fullmatch(r"GasHammer/\d+\.\d+\.\d+\S* \([0-9a-z]+\)", headers["User-Agent"])
    for value in headers.values():
        assert value.isprintable() and "\n" not in value
