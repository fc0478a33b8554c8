"""The one keccak-256 of the package, chosen once at import.

Every hash the package computes (transaction hashes, signing digests, addresses, EIP-55 checksums,
digests of runs) goes through :func:`keccak256`. It is the fastest implementation that agrees with
pycryptodome's public API on a set of samples, checked at import: pycryptodome's C sponge called
directly through cffi when its private library has the expected shape, the public API otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

__all__ = ["KECCAK_BACKEND", "KeccakStream", "keccak256"]


def _pycryptodome_keccak256(data: bytes) -> bytes:
    from Crypto.Hash import keccak as _keccak

    return _keccak.new(data=data, digest_bits=256).digest()


def _pycryptodome_raw_keccak256() -> Callable[[bytes], bytes] | None:
    """Build a keccak-256 that calls pycryptodome's C sponge through cffi directly.

    pycryptodome's public ``keccak.new(...).digest()`` costs ~4.7 µs for a 150-byte transaction,
    most of it in its Python wrapper; three direct cffi calls on a reused sponge cost ~1.5 µs. Two hashes per transaction
    make that ~12 % of the whole per-transaction budget. The raw library is not public API, so this
    returns ``None`` whenever its shape is not the expected one, and the caller self-tests the result
    against the public API before using it.
    """
    try:
        from Crypto.Hash import keccak as _keccak
        from Crypto.Util import _raw_api
    except ImportError:
        return None
    lib = getattr(_keccak, "_raw_keccak_lib", None)
    ffi = getattr(_raw_api, "ffi", None)
    if lib is None or ffi is None or getattr(_raw_api, "backend", None) != "cffi":
        return None
    try:
        new = ffi.new
        buffer = ffi.buffer
        # Resolved once: ffi.new() with a ctype object skips parsing the C declaration per call.
        state_ref_type = ffi.typeof("void **")
        digest_type = ffi.typeof("uint8_t[32]")
        init = lib.keccak_init
        absorb = lib.keccak_absorb
        squeeze_digest = lib.keccak_digest
        destroy = lib.keccak_destroy
        reset = lib.keccak_reset
    except AttributeError:
        return None

    class _Sponge:
        """One Keccak-256 sponge and digest buffer, reused by a thread: ``keccak_reset`` after each
        hash costs less than allocating and freeing a state per hash."""

        __slots__ = ("digest", "digest_view", "state")

        def __init__(self) -> None:
            state_ref = new(state_ref_type)
            # capacity 512 bits (64 bytes) and 24 rounds: Keccak-256; padding byte 0x01 is the
            # original Keccak padding Ethereum uses (SHA3-256 would use 0x06).
            if init(state_ref, 64, 24):
                raise MemoryError("keccak: could not allocate the sponge state")
            self.state = state_ref[0]
            self.digest = new(digest_type)
            self.digest_view = buffer(self.digest)

        def __del__(self) -> None:
            destroy(self.state)

    # One sponge per thread: cffi releases the GIL inside the C calls, so threads must not share one.
    per_thread = threading.local()

    def raw_keccak256(data: bytes) -> bytes:
        try:
            sponge = per_thread.sponge
        except AttributeError:
            sponge = per_thread.sponge = _Sponge()
        state = sponge.state
        absorb(state, data, len(data))
        squeeze_digest(state, sponge.digest, 32, 1)
        digest: bytes = sponge.digest_view[:]
        reset(state)
        return digest

    return raw_keccak256


def _select_keccak256() -> tuple[str, Callable[[bytes], bytes]]:
    """Pick the fastest keccak-256 implementation that agrees with pycryptodome's public API."""
    samples = [bytes(range(256))[:n] * 3 for n in (0, 1, 45, 46, 47, 100)]
    raw = _pycryptodome_raw_keccak256()
    if raw is not None:
        try:
            if all(raw(s) == _pycryptodome_keccak256(s) for s in samples):
                return "pycryptodome-cffi", raw
        except Exception:
            pass  # any failure just means "use the public API"
    return "pycryptodome", _pycryptodome_keccak256


_KECCAK_SELECTION: Final = _select_keccak256()
KECCAK_BACKEND: Final[str] = _KECCAK_SELECTION[0]
"""Which keccak-256 implementation is in use (reported by the benchmark)."""
keccak256: Final[Callable[[bytes], bytes]] = _KECCAK_SELECTION[1]
"""keccak-256 of a byte string (Ethereum's Keccak, not SHA3-256)."""


class KeccakStream:
    """Keccak-256 of data given in pieces (a run's transaction hashes, as rows are forgotten).

    Off the hot path, so pycryptodome's public API: ``update`` as often as needed, then ``digest``.
    """

    def __init__(self) -> None:
        from Crypto.Hash import keccak as _keccak

        self._hash = _keccak.new(digest_bits=256)

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def digest(self) -> bytes:
        return bytes(self._hash.digest())
