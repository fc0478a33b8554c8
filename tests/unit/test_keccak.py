"""The package's one keccak-256 must be Ethereum's Keccak, whichever backend the import-time self-test picked.

Two independent references: eth-hash (what eth-account and web3 hash with) and pycryptodome's public API
(what the self-test compares against).
"""

from __future__ import annotations

import threading

import pytest
from Crypto.Hash import keccak as pycryptodome_keccak
from eth_hash.auto import keccak as reference_keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_gashammer.chain import keccak as keccak_module
from pytest_gashammer.chain.keccak import keccak256

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
payloads = st.one_of(st.binary(max_size=600), st.integers(0, 300).map(lambda n: b"\x00" * n))


@PROPERTY
@given(data=payloads)
def test_keccak_matches_eth_hash(data: bytes) -> None:
    assert keccak256(data) == reference_keccak(data)


@PROPERTY
@given(data=payloads)
def test_keccak_matches_pycryptodome_public_api(data: bytes) -> None:
    assert keccak256(data) == pycryptodome_keccak.new(data=data, digest_bits=256).digest()


def test_keccak_known_vectors() -> None:
    """Keccak-256, not SHA3-256 (which differs only in the padding byte)."""
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"abc").hex() == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"


def test_keccak_is_correct_from_many_threads_at_once() -> None:
    """The sponge is reused per thread; threads hashing together must never see each other's state."""
    inputs = [bytes([i]) * (i * 7 % 300) for i in range(64)]
    expected = [reference_keccak(data) for data in inputs]
    wrong: list[int] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        for _ in range(200):
            for index, data in enumerate(inputs):
                if keccak256(data) != expected[index]:
                    wrong.append(index)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_keccak_falls_back_to_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """If pycryptodome's raw library changes shape, the public API is used instead."""
    monkeypatch.setattr(keccak_module, "_pycryptodome_raw_keccak256", lambda: None)
    name, fallback = keccak_module._select_keccak256()
    assert name == "pycryptodome"
    assert fallback(b"abc") == reference_keccak(b"abc")
    broken = lambda data: b"\x00" * 32  # noqa: E731
    monkeypatch.setattr(keccak_module, "_pycryptodome_raw_keccak256", lambda: broken)
    assert keccak_module._select_keccak256()[0] == "pycryptodome"
