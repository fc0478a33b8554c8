"""The package's RLP decoder agrees with the ``rlp`` PyPI package, which web3 uses, item for item and
error for error; and it refuses what go-ethereum refuses (non-canonical forms, truncation)."""

from __future__ import annotations

import pickle

import pytest
import rlp as pyrlp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pytest_gashammer.chain import rlp

FAST = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

items = st.recursive(
    st.binary(max_size=70),  # crosses the 55/56-byte boundary between short and long strings
    lambda children: st.lists(children, max_size=6),
    max_leaves=30,
)


def encode(item: rlp.RlpItem) -> bytes:
    """The package's encoder, item by item, as its callers build transactions."""
    if isinstance(item, bytes):
        return rlp.encode_bytes(item)
    return rlp.encode_list(b"".join(encode(child) for child in item))


def reference(data: bytes) -> rlp.RlpItem | None:
    """What the PyPI package decodes, or None where it refuses."""
    try:
        return pyrlp.decode(data, strict=True)  # type: ignore[no-any-return]
    except Exception:  # it raises DecodingError, and IndexError on some truncations
        return None


@FAST
@given(items)
def test_decode_reads_back_what_both_encoders_write(item: rlp.RlpItem) -> None:
    encoded = pyrlp.encode(item)
    assert encode(item) == encoded
    assert rlp.decode(encoded) == item


@FAST
@given(st.binary(max_size=80))
def test_decode_accepts_exactly_what_the_reference_accepts(data: bytes) -> None:
    expected = reference(data)
    if expected is None:
        with pytest.raises(rlp.RlpDecodeError):
            rlp.decode(data)
    else:
        assert rlp.decode(data) == expected


@FAST
@given(items, st.data())
def test_a_damaged_encoding_is_refused_or_read_as_the_reference_reads_it(
    item: rlp.RlpItem, data: st.DataObject
) -> None:
    # Random bytes are rarely near-valid; one changed, dropped or added byte in a real encoding is.
    encoded = bytearray(pyrlp.encode(item))
    action = data.draw(st.sampled_from(["flip", "cut", "append"]))
    if action == "flip":
        position = data.draw(st.integers(0, len(encoded) - 1))
        encoded[position] = data.draw(st.integers(0, 255))
    elif action == "cut":
        del encoded[data.draw(st.integers(0, len(encoded) - 1)) :]
    else:
        encoded.append(data.draw(st.integers(0, 255)))
    expected = reference(bytes(encoded))
    if expected is None:
        with pytest.raises(rlp.RlpDecodeError):
            rlp.decode(bytes(encoded))
    else:
        assert rlp.decode(bytes(encoded)) == expected


@FAST
@given(st.integers(0, 2**64 - 1))
def test_decode_uint_reads_every_uint64(value: int) -> None:
    assert rlp.decode_uint(pyrlp.encode(value)) == value
    assert rlp.decode_uint(rlp.encode_int(value)) == value


@FAST
@given(st.binary(max_size=12))
@example(b"\xc0")
def test_decode_uint_accepts_what_the_reference_integer_sedes_accepts(data: bytes) -> None:
    try:
        expected: int | None = pyrlp.decode(data, sedes=pyrlp.sedes.big_endian_int, strict=True)
    except Exception:
        expected = None
    if data[:1] >= b"\xc0":
        expected = None  # a list is no integer (Go's rlp refuses it; pyrlp reads the empty list as 0)
    if expected is not None and expected < 2**64:
        assert rlp.decode_uint(data) == expected
    else:
        with pytest.raises(rlp.RlpDecodeError):
            rlp.decode_uint(data)


@pytest.mark.parametrize(
    ("data", "truncated", "phrase"),
    [
        (b"", True, "ends where an item should start"),
        (b"\x83ab", True, "a string of 3 bytes but only 2 remain"),
        (b"\xb9\x01", True, "length of a long string is cut off"),
        (b"\xc3\x83abc", True, "a string of 3 bytes but only 2 remain"),
        (b"\x81\x05", False, "byte 0x05 written as a string"),
        (b"\xb8\x05abcde", False, "a long string prefix for 5 bytes"),
        (b"\xb9\x00\x40" + b"a" * 64, False, "has a leading zero"),
        (b"\xf8\x02\x01\x02", False, "a long list prefix for 2 bytes"),
        (b"\x01\x02", False, "1 byte after the RLP item"),
    ],
)
def test_each_refusal_names_its_reason(data: bytes, truncated: bool, phrase: str) -> None:
    with pytest.raises(rlp.RlpDecodeError) as caught:
        rlp.decode(data)
    assert isinstance(caught.value, rlp.RlpTruncatedError) is truncated
    assert phrase in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"\x00", "leading zero"),  # Go: 0 is the empty string, never 0x00
        (b"\x82\x00\x01", "leading zero"),
        (b"\x89" + b"\x01" * 9, "wider than 64 bits"),
        (b"\xc0", "found a list"),
        (b"\x80\x00", "1 byte after the RLP integer"),
    ],
)
def test_decode_uint_refuses_what_go_refuses(data: bytes, phrase: str) -> None:
    with pytest.raises(rlp.RlpDecodeError, match=phrase):
        rlp.decode_uint(data)


def test_item_span_walks_a_stream_of_items_without_decoding_them() -> None:
    stream = pyrlp.encode(b"x" * 60) + pyrlp.encode([b"a", [b"b"]]) + b"\x05"
    spans = []
    offset = 0
    while offset < len(stream):
        is_list, start, end = rlp.item_span(stream, offset)
        spans.append((is_list, stream[start:end]))
        offset = end
    assert spans == [(False, b"x" * 60), (True, pyrlp.encode([b"a", [b"b"]])[1:]), (False, b"\x05")]


def test_an_item_may_not_run_past_the_end_it_is_given() -> None:
    # The list's own payload is 4 bytes; its item claims 3 but only 2 are inside the list.
    with pytest.raises(rlp.RlpTruncatedError):
        rlp.item_span(b"\x83abc", 0, 3)


def test_nesting_is_bounded_instead_of_exhausting_the_stack() -> None:
    deepest_allowed = b""
    for _ in range(rlp.MAX_DECODE_DEPTH):
        deepest_allowed = rlp.encode_list(deepest_allowed)
    assert rlp.decode(deepest_allowed) == pyrlp.decode(deepest_allowed)
    with pytest.raises(rlp.RlpDecodeError, match="nested deeper"):
        rlp.decode(rlp.encode_list(deepest_allowed))


def test_the_error_survives_pickling() -> None:
    error = rlp.RlpTruncatedError("truncated RLP: x", 7)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is rlp.RlpTruncatedError
    assert str(copy) == str(error)
