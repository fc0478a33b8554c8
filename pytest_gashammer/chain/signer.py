"""Fast Ethereum transaction signing for the load generator's hot path.

Why this exists: ``eth_account.Account.sign_transaction`` spends almost all of its ~450 µs per
transaction on validation, pydantic and ``rlp`` object construction and generic formatting; the
secp256k1 signature itself (libsecp256k1 through ``coincurve``) is ~25 µs. At the gas rates the
hammer targets, one core of eth-account signing tops out near 2k tx/s, which would make the load
generator, not the node under test, the bottleneck.

This module encodes with the package's own RLP (:mod:`~pytest_gashammer.chain.rlp`) in the field
order of :data:`~pytest_gashammer.chain.tx.TX_FIELDS`, signs the keccak digest directly with
``coincurve`` and, through :meth:`FastSigner.prepare`, pre-encodes every field of a transaction
template except the nonce, so
the per-transaction work is one small integer encoding, a few byte concatenations, two keccak-256
hashes (signing digest and transaction hash) and one signature.

The output is byte-identical to ``Account.sign_transaction`` (``raw_transaction`` and ``hash``) for
legacy (EIP-155), EIP-2930 and EIP-1559 transactions: libsecp256k1 signs with the RFC 6979
deterministic nonce and returns low-s signatures, exactly what eth-account produces, and the RLP
encoding is canonical (minimal integers, no leading zeros).

Accepted input mirrors eth-account's dict form (``nonce``, ``gas``, ``to``, ``value``, ``data``,
``chainId``, ``gasPrice``, ``maxFeePerGas``, ``maxPriorityFeePerGas``, ``accessList``, ``type``) with
a few deliberate differences: an explicit ``"type": 0`` means legacy; all-lowercase or all-uppercase
addresses are accepted (mixed-case ones must carry a valid EIP-55 checksum, as in eth-account);
``from`` is allowed when it is the signer's own address (web3-built dicts carry it); access-list
storage keys must be exactly 32 bytes when given as hex or bytes. Every malformed field raises
:class:`ValueError` with a one-line message that starts with the field name.
"""

from __future__ import annotations

import enum
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import coincurve

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.rlp import LIST_HEADER as _RLP_LIST_HEADER
from pytest_gashammer.chain.rlp import LIST_HEADER_TABLE_SIZE as _LIST_HEADER_TABLE_SIZE
from pytest_gashammer.chain.rlp import SMALL_INT as _RLP_SMALL_INT
from pytest_gashammer.chain.rlp import STRING_PREFIX as _RLP_STR_PREFIX
from pytest_gashammer.chain.rlp import encode_bytes as _rlp_bytes
from pytest_gashammer.chain.rlp import encode_int as _rlp_int
from pytest_gashammer.chain.rlp import encode_list as _rlp_list
from pytest_gashammer.chain.rlp import encode_scalar32 as _rlp_scalar32
from pytest_gashammer.chain.rlp import long_prefix as _rlp_long_prefix
from pytest_gashammer.chain.tx import TX_FIELDS, Segments, segments_of

__all__ = ["KEEP", "FastSigner", "PreparedTx", "SignedTx"]

_SECP256K1_ORDER: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_UINT256_LIMIT: Final = 1 << 256
# EIP-2681 caps the nonce at 2**64 - 1; gas limits are uint64 in every client.
_UINT64_LIMIT: Final = 1 << 64

_HEX_QUANTITY = re.compile(r"0[xX][0-9a-fA-F]+")
_HEX_DATA = re.compile(r"0[xX](?:[0-9a-fA-F]{2})*")
_HEX_ADDRESS_BODY = re.compile(r"[0-9a-fA-F]{40}")
# yParity of typed transactions: 0 encodes as the empty string, 1 as itself.
_Y_PARITY_RLP: Final[tuple[bytes, bytes]] = (b"\x80", b"\x01")

# ---------------------------------------------------------------------------------------------------
# Field parsing (cold path: once per template, or per call of FastSigner.sign)
# ---------------------------------------------------------------------------------------------------


def _uint(value: Any, field: str, limit: int = _UINT256_LIMIT) -> int:
    """Parse an unsigned integer field given as an int or a 0x-hex quantity, like eth-account."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected an integer, got a bool ({value!r})")
    if isinstance(value, int):
        number = int(value)
    elif isinstance(value, str):
        if _HEX_QUANTITY.fullmatch(value) is None:
            raise ValueError(f"{field}: expected an integer or a 0x-prefixed hex quantity, got {value!r}")
        number = int(value[2:], 16)
    else:
        try:
            number = operator.index(value)
        except TypeError:
            raise ValueError(f"{field}: expected an integer, got {type(value).__name__}") from None
    if number < 0:
        raise ValueError(f"{field}: must not be negative, got {number}")
    if number >= limit:
        raise ValueError(f"{field}: {number} does not fit in {limit.bit_length() - 1} bits")
    return number


def _data_bytes(value: Any, field: str) -> bytes:
    """Parse a byte-string field given as bytes-like or 0x-hex (``"0x"`` is empty)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        if _HEX_DATA.fullmatch(value) is None:
            raise ValueError(f"{field}: expected bytes or 0x-prefixed hex with an even number of digits")
        return bytes.fromhex(value[2:])
    raise ValueError(f"{field}: expected bytes or a 0x-hex string, got {type(value).__name__}")


def _checksum_address(address: bytes) -> str:
    """EIP-55 mixed-case checksum encoding of a 20-byte address."""
    lower = address.hex()
    digest = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if int(h, 16) >= 8 else c for c, h in zip(lower, digest[:40], strict=True)
    )


def _address_bytes(value: Any, field: str) -> bytes:
    """Parse a 20-byte address given as bytes or 0x-hex; mixed case must be a valid EIP-55 checksum."""
    if isinstance(value, bytes | bytearray | memoryview):
        address = bytes(value)
        if len(address) != 20:
            raise ValueError(f"{field}: expected a 20-byte address, got {len(address)} bytes")
        return address
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected a 0x-hex address or 20 bytes, got {type(value).__name__}")
    if len(value) != 42 or value[:2] not in ("0x", "0X"):
        raise ValueError(f"{field}: expected a 0x-prefixed 40-hex-digit address, got {value!r}")
    body = value[2:]
    if _HEX_ADDRESS_BODY.fullmatch(body) is None:
        raise ValueError(f"{field}: address is not valid hex: {value!r}")
    address = bytes.fromhex(body)
    if body != body.lower() and body != body.upper() and _checksum_address(address)[2:] != body:
        raise ValueError(f"{field}: address has an invalid EIP-55 checksum: {value!r}")
    return address


# Encoded ``to`` fields keyed by the caller's string, so a recipient pool drawn from per transaction
# pays for hex parsing and the EIP-55 check (a keccak) once per address, not once per transaction.
_TO_CACHE: dict[str, bytes] = {}
_TO_CACHE_LIMIT: Final = 1 << 16


def _encode_to(value: Any, field: str = "to") -> bytes:
    """RLP of the ``to`` field: empty string for contract creation, else the 20-byte address."""
    if type(value) is bytes and len(value) == 20:
        return b"\x94" + value
    if isinstance(value, str):
        encoded = _TO_CACHE.get(value)
        if encoded is not None:
            return encoded
        if value == "":
            return b"\x80"
        encoded = b"\x94" + _address_bytes(value, field)
        if len(_TO_CACHE) >= _TO_CACHE_LIMIT:
            _TO_CACHE.clear()
        _TO_CACHE[value] = encoded
        return encoded
    if value is None or value == b"":
        return b"\x80"
    return b"\x94" + _address_bytes(value, field)


def _storage_key(value: Any, field: str) -> bytes:
    """Parse an access-list storage key: 32 bytes, 0x + 64 hex digits, or an int below 2**256."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _uint(value, field).to_bytes(32, "big")
    key = _data_bytes(value, field)
    if len(key) != 32:
        raise ValueError(f"{field}: expected a 32-byte storage key, got {len(key)} bytes")
    return key


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


def _encode_access_list(value: Any) -> bytes:
    """RLP of an EIP-2930 access list given in JSON-RPC form: ``[{"address", "storageKeys"}, ...]``."""
    if not _is_sequence(value):
        raise ValueError(f"accessList: expected a list of entries, got {type(value).__name__}")
    entries = []
    for i, entry in enumerate(value):
        where = f"accessList[{i}]"
        if not isinstance(entry, Mapping) or set(entry) != {"address", "storageKeys"}:
            raise ValueError(f"{where}: expected a mapping with exactly 'address' and 'storageKeys'")
        address = _address_bytes(entry["address"], f"{where}.address")
        keys = entry["storageKeys"]
        if not _is_sequence(keys):
            raise ValueError(f"{where}.storageKeys: expected a list, got {type(keys).__name__}")
        keys_payload = b"".join(
            b"\xa0" + _storage_key(key, f"{where}.storageKeys[{j}]") for j, key in enumerate(keys)
        )
        entries.append(_rlp_list(b"\x94" + address + _rlp_list(keys_payload)))
    return _rlp_list(b"".join(entries))


def _required_uint(field: str, limit: int = _UINT256_LIMIT) -> Callable[[Mapping[str, Any], int], bytes]:
    return lambda tx, tx_type: _rlp_int(_uint(_required(tx, field, tx_type), field, limit))


# How the signer parses and encodes each field of chain.tx.TX_FIELDS but the nonce and the chain id
# (both bound elsewhere). Signing another transaction type needs an entry for each of its new fields.
_FIELD_ENCODERS: Final[dict[str, Callable[[Mapping[str, Any], int], bytes]]] = {
    "gas": _required_uint("gas", _UINT64_LIMIT),
    "gasPrice": _required_uint("gasPrice"),
    "maxPriorityFeePerGas": _required_uint("maxPriorityFeePerGas"),
    "maxFeePerGas": _required_uint("maxFeePerGas"),
    "to": lambda tx, _: _encode_to(tx.get("to")),
    "value": lambda tx, _: _rlp_int(_uint(tx.get("value", 0), "value")),
    "data": lambda tx, _: _rlp_bytes(_data_bytes(tx.get("data", b""), "data")),
    "accessList": lambda tx, _: _encode_access_list(tx.get("accessList", ())),
}
_SIGNED_TYPES: Final = (0, 1, 2)
# Accepted input: the type's fields, plus ``type``, ``chainId`` (legacy signs it through EIP-155) and
# ``from`` (web3-built dicts carry it).
_FIELDS_BY_TYPE: Final[dict[int, frozenset[str]]] = {
    tx_type: frozenset(TX_FIELDS[tx_type]) | {"type", "chainId", "from"} for tx_type in _SIGNED_TYPES
}
_SEGMENTS: Final[dict[int, Segments]] = {tx_type: segments_of(tx_type) for tx_type in _SIGNED_TYPES}


def _tx_type(tx: Mapping[str, Any]) -> int:
    """Explicit ``type`` (int or hex), else inferred exactly like eth-account does."""
    if "type" in tx:
        raw = tx["type"]
        tx_type = _uint(raw, "type")
        if tx_type not in _FIELDS_BY_TYPE:
            supported = ", ".join(map(str, _SIGNED_TYPES))
            raise ValueError(f"type: unsupported transaction type {raw!r} (supported: {supported})")
        return tx_type
    if "gasPrice" in tx and "accessList" in tx:
        return 1
    if "maxFeePerGas" in tx or "maxPriorityFeePerGas" in tx:
        return 2
    return 0


def _required(tx: Mapping[str, Any], field: str, tx_type: int) -> Any:
    try:
        return tx[field]
    except KeyError:
        raise ValueError(f"{field}: required for type-{tx_type} transactions") from None


# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------


class SignedTx(NamedTuple):
    """A signed transaction: the bytes for ``eth_sendRawTransaction`` and their keccak hash.

    A NamedTuple because one is created per transaction on the hot path and tuple construction is
    the cheapest immutable record Python has.
    """

    raw: bytes
    hash: bytes

    @property
    def hash_hex(self) -> str:
        """The transaction hash as 0x-prefixed lowercase hex, as nodes report it."""
        return "0x" + self.hash.hex()

    @property
    def raw_hex(self) -> str:
        """The raw transaction as 0x-prefixed hex, the ``eth_sendRawTransaction`` parameter."""
        return "0x" + self.raw.hex()


class _Keep(enum.Enum):
    KEEP = enum.auto()


KEEP: Final = _Keep.KEEP
"""Default of :meth:`PreparedTx.sign_fields` overrides: keep the template's value. (``None`` cannot
serve, since ``to=None`` means contract creation.)"""


class PreparedTx:
    """A transaction template with every field but the nonce (and signature) already RLP-encoded.

    Signed bodies are laid out as ``head | nonce | fees_gas | to | value | data | post | signature``
    where ``head`` is the chain id for typed transactions (empty for legacy), ``fees_gas`` the fee
    fields and gas limit, and ``post`` the access list (empty for legacy). The signing preimage
    replaces the signature with ``unsigned_tail`` (``chainId, 0, 0`` for EIP-155 legacy, nothing for
    typed transactions). Keeping these as ready byte strings makes :meth:`sign` one concatenation,
    one list header, two hashes and one signature. Instances are immutable and thread-safe.
    """

    __slots__ = (
        "_data",
        "_fees_gas",
        "_head",
        "_mid",
        "_post",
        "_sign_digest",
        "_to",
        "_type_prefix",
        "_unsigned_tail",
        "_v",
        "_value",
        "chain_id",
        "tx_type",
    )

    def __init__(
        self,
        *,
        sign_digest: Callable[..., bytes],
        tx_type: int,
        chain_id: int,
        head: bytes,
        fees_gas: bytes,
        to: bytes,
        value: bytes,
        data: bytes,
        post: bytes,
        unsigned_tail: bytes,
        v: tuple[bytes, bytes],
    ) -> None:
        self.tx_type = tx_type
        self.chain_id = chain_id
        self._sign_digest = sign_digest
        self._type_prefix = b"" if tx_type == 0 else bytes((tx_type,))
        self._head = head
        self._fees_gas = fees_gas
        self._to = to
        self._value = value
        self._data = data
        self._post = post
        self._mid = b"".join((fees_gas, to, value, data, post))
        self._unsigned_tail = unsigned_tail
        self._v = v

    def __repr__(self) -> str:
        return f"PreparedTx(type={self.tx_type}, chain_id={self.chain_id})"

    def sign(self, nonce: int) -> SignedTx:
        """Sign the template with ``nonce``; the only per-transaction encoding is the nonce itself."""
        if type(nonce) is not int or not 0 <= nonce < _UINT64_LIMIT:
            nonce = _uint(nonce, "nonce", _UINT64_LIMIT)  # coerces an int-like, or raises
        if nonce < 0x80:
            nonce_rlp = _RLP_SMALL_INT[nonce]
        else:
            size = (nonce.bit_length() + 7) >> 3
            nonce_rlp = _RLP_STR_PREFIX[size] + nonce.to_bytes(size, "big")
        return self._seal(self._head + nonce_rlp + self._mid)

    def sign_fields(
        self,
        nonce: int,
        *,
        to: str | bytes | None | _Keep = KEEP,
        value: int | _Keep = KEEP,
        data: bytes | str | _Keep = KEEP,
    ) -> SignedTx:
        """Sign with ``nonce`` and, optionally, a different recipient, value or calldata.

        Templates that draw a fresh recipient per transaction use this instead of re-preparing.
        ``to`` may be 20 raw bytes or a hex string; strings are validated (hex, EIP-55) once and then
        memoized, so a recipient pool costs one dict lookup per transaction. ``to=None`` means
        contract creation. Measured Python overhead on top of :meth:`sign` (whose total is ~35 µs,
        ~26 µs of it the signature): ~0.3 µs for a new ``to``, ~0.5 µs more with a new ``value``,
        ~0.5 µs for new calldata of 68 bytes, i.e. within run-to-run noise.
        """
        if type(nonce) is not int or not 0 <= nonce < _UINT64_LIMIT:
            nonce = _uint(nonce, "nonce", _UINT64_LIMIT)
        if nonce < 0x80:
            nonce_rlp = _RLP_SMALL_INT[nonce]
        else:
            size = (nonce.bit_length() + 7) >> 3
            nonce_rlp = _RLP_STR_PREFIX[size] + nonce.to_bytes(size, "big")
        to_rlp = self._to if to is KEEP else _encode_to(to)
        if value is KEEP:
            value_rlp = self._value
        elif type(value) is int and 0 <= value < _UINT256_LIMIT:
            value_rlp = _rlp_int(value)
        else:
            value_rlp = _rlp_int(_uint(value, "value"))
        data_rlp = self._data if data is KEEP else _rlp_bytes(_data_bytes(data, "data"))
        return self._seal(
            b"".join((self._head, nonce_rlp, self._fees_gas, to_rlp, value_rlp, data_rlp, self._post))
        )

    def _seal(self, core: bytes) -> SignedTx:
        """Hash and sign the preimage of ``core`` and assemble the signed envelope."""
        type_prefix = self._type_prefix
        unsigned = core + self._unsigned_tail
        size = len(unsigned)
        header = _RLP_LIST_HEADER[size] if size < _LIST_HEADER_TABLE_SIZE else _rlp_long_prefix(size, 0xF7)
        signature = self._sign_digest(keccak256(type_prefix + header + unsigned), None)
        r = signature[:32]
        s = signature[32:64]
        body = b"".join(
            (
                core,
                self._v[signature[64]],
                b"\xa0" + r if r[0] else _rlp_scalar32(r),
                b"\xa0" + s if s[0] else _rlp_scalar32(s),
            )
        )
        size = len(body)
        header = _RLP_LIST_HEADER[size] if size < _LIST_HEADER_TABLE_SIZE else _rlp_long_prefix(size, 0xF7)
        raw = type_prefix + header + body
        return SignedTx(raw, keccak256(raw))


class FastSigner:
    """Signs transactions for one private key on one chain, byte-identical to eth-account.

    Binding the chain id at construction lets the signer pre-encode it (and the two possible EIP-155
    ``v`` values) once, and catches transactions meant for another chain. Use :meth:`sign` for
    one-offs and :meth:`prepare` + :meth:`PreparedTx.sign` in load loops.
    """

    __slots__ = ("_address_raw", "_chain_rlp", "_key", "_legacy_v", "address", "chain_id")

    address: str
    """EIP-55 checksummed address of the key."""
    chain_id: int

    def __init__(self, private_key: bytes | str, chain_id: int) -> None:
        secret = _private_key_bytes(private_key)
        self.chain_id = _uint(chain_id, "chain_id")
        if self.chain_id == 0:
            raise ValueError("chain_id: must be positive")
        self._key = coincurve.PrivateKey(secret)
        public = self._key.public_key.format(compressed=False)[1:]
        self._address_raw = keccak256(public)[12:]
        self.address = _checksum_address(self._address_raw)
        self._chain_rlp = _rlp_int(self.chain_id)
        base_v = self.chain_id * 2 + 35
        self._legacy_v = (_rlp_int(base_v), _rlp_int(base_v + 1))

    def __repr__(self) -> str:
        return f"FastSigner(address={self.address}, chain_id={self.chain_id})"

    def sign(self, tx: Mapping[str, Any]) -> SignedTx:
        """Validate, encode and sign a complete transaction dict (eth-account's dict form)."""
        _check_mapping(tx)
        tx_type = _tx_type(tx)
        nonce = _uint(_required(tx, "nonce", tx_type), "nonce", _UINT64_LIMIT)
        return self._prepare(tx, tx_type).sign(nonce)

    def prepare(self, tx_without_nonce: Mapping[str, Any]) -> PreparedTx:
        """Validate and pre-encode a template; sign it per nonce with :meth:`PreparedTx.sign`.

        The template must not contain ``nonce``: silently ignoring one would hide a caller's
        expectation that it is used.
        """
        _check_mapping(tx_without_nonce)
        if "nonce" in tx_without_nonce:
            raise ValueError("nonce: prepare() takes a template without a nonce; pass it to sign()")
        return self._prepare(tx_without_nonce, _tx_type(tx_without_nonce))

    def _prepare(self, tx: Mapping[str, Any], tx_type: int) -> PreparedTx:
        allowed = _FIELDS_BY_TYPE[tx_type]
        for field in tx:
            if field not in allowed:
                raise ValueError(f"{field}: not a field of type-{tx_type} transactions")
        if "chainId" in tx and _uint(tx["chainId"], "chainId") != self.chain_id:
            raise ValueError(
                f"chainId: {tx['chainId']!r} does not match the signer's chain id {self.chain_id}"
            )
        if "from" in tx and _address_bytes(tx["from"], "from") != self._address_raw:
            raise ValueError(f"from: {tx['from']!r} is not the signer's address {self.address}")
        # gas first, then the layout's order: the first of several malformed fields is the one named.
        encoded = {"chainId": self._chain_rlp, "gas": _FIELD_ENCODERS["gas"](tx, tx_type)}
        for field in TX_FIELDS[tx_type]:
            if field != "nonce" and field not in encoded:
                encoded[field] = _FIELD_ENCODERS[field](tx, tx_type)
        head, fees_gas, post = (b"".join(map(encoded.__getitem__, part)) for part in _SEGMENTS[tx_type])
        if tx_type == 0:
            unsigned_tail = self._chain_rlp + b"\x80\x80"  # EIP-155: chainId, 0, 0
            v = self._legacy_v
        else:
            unsigned_tail = b""
            v = _Y_PARITY_RLP
        return PreparedTx(
            sign_digest=self._key.sign_recoverable,
            tx_type=tx_type,
            chain_id=self.chain_id,
            head=head,
            fees_gas=fees_gas,
            to=encoded["to"],
            value=encoded["value"],
            data=encoded["data"],
            post=post,
            unsigned_tail=unsigned_tail,
            v=v,
        )


def _check_mapping(tx: Any) -> None:
    if not isinstance(tx, Mapping):
        raise ValueError(f"tx: expected a mapping of transaction fields, got {type(tx).__name__}")


def _private_key_bytes(private_key: Any) -> bytes:
    """Parse a private key (32 bytes, or 64 hex digits with optional 0x) and check its range."""
    if isinstance(private_key, bytes | bytearray | memoryview):
        secret = bytes(private_key)
    elif isinstance(private_key, str):
        text = private_key[2:] if private_key[:2] in ("0x", "0X") else private_key
        if len(text) != 64 or _HEX_DATA.fullmatch("0x" + text) is None:
            raise ValueError("private_key: expected 64 hex digits (optionally 0x-prefixed)")
        secret = bytes.fromhex(text)
    else:
        raise ValueError(f"private_key: expected 32 bytes or a hex string, got {type(private_key).__name__}")
    if len(secret) != 32:
        raise ValueError(f"private_key: expected 32 bytes, got {len(secret)}")
    if not 0 < int.from_bytes(secret, "big") < _SECP256K1_ORDER:
        raise ValueError("private_key: outside the secp256k1 range [1, n-1]")
    return secret
