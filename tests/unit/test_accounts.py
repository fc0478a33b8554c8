"""Sender accounts derived from the seed, and the nonce book that keeps their nonces honest."""

from __future__ import annotations

from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_gashammer.edge.accounts import NonceBook, derive_senders, sender_key

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

# ----------------------------------------------------------------------------------------------
# keys and senders


def test_sender_key_is_deterministic_per_seed_and_index() -> None:
    assert sender_key(7, 3) == sender_key(7, 3)
    assert sender_key(0, 0) == sender_key(0, 0)


def test_sender_keys_differ_across_indices_and_seeds() -> None:
    keys = {sender_key(seed, index) for seed in (0, 1, 2**32 - 1) for index in range(50)}
    assert len(keys) == 150


def test_sender_keys_are_valid_secp256k1_scalars() -> None:
    for seed in (0, 1, 123456789, 2**32 - 1):
        for index in range(20):
            key = sender_key(seed, index)
            assert isinstance(key, bytes) and len(key) == 32
            assert 0 < int.from_bytes(key, "big") < SECP256K1_ORDER


def test_derived_senders_use_the_address_eth_account_derives() -> None:
    senders = derive_senders(99, 0, 4)
    assert [s.index for s in senders] == [0, 1, 2, 3]
    for sender in senders:
        assert sender.key.startswith("0x") and len(sender.key) == 66
        assert bytes.fromhex(sender.key[2:]) == sender_key(99, sender.index)
        assert Account.from_key(sender.key).address == sender.address
    assert len({s.address for s in senders}) == 4


def test_disjoint_ranges_compose_into_the_same_sequence() -> None:
    whole = derive_senders(5, 0, 10)
    assert whole == derive_senders(5, 0, 5) + derive_senders(5, 5, 5)
    assert derive_senders(5, 3, 4) == whole[3:7]


def test_different_seeds_give_different_accounts() -> None:
    first = {s.address for s in derive_senders(1, 0, 5)}
    second = {s.address for s in derive_senders(2, 0, 5)}
    assert not first & second


def test_zero_senders_is_an_empty_list() -> None:
    assert derive_senders(1, 10, 0) == []


# ----------------------------------------------------------------------------------------------
# NonceBook


def test_take_hands_out_sequential_nonces_per_sender() -> None:
    book = NonceBook([0, 40])
    assert [book.take(0) for _ in range(3)] == [0, 1, 2]
    assert [book.take(1) for _ in range(2)] == [40, 41]
    assert book.next_nonce(0) == 3
    assert book.next_nonce(1) == 42
    assert book.holes(0) == [] and book.holes(1) == []


def test_released_nonces_are_reissued_first_smallest_first() -> None:
    book = NonceBook([10])
    taken = [book.take(0) for _ in range(5)]  # 10..14
    assert taken == [10, 11, 12, 13, 14]
    book.release(0, 13)
    book.release(0, 11)
    assert book.holes(0) == [11, 13]
    assert book.take(0) == 11
    assert book.take(0) == 13
    assert book.take(0) == 15
    assert book.next_nonce(0) == 16


def test_releasing_the_same_nonce_twice_reissues_it_once() -> None:
    book = NonceBook([0])
    book.take(0)
    book.take(0)
    book.release(0, 0)
    book.release(0, 0)
    assert book.holes(0) == [0]
    assert [book.take(0), book.take(0)] == [0, 2]


def test_release_of_a_never_issued_nonce_is_ignored() -> None:
    book = NonceBook([3])
    book.take(0)  # 3
    book.release(0, 4)
    book.release(0, 100)
    assert book.holes(0) == []
    assert book.take(0) == 4


def test_release_of_a_nonce_below_the_starting_nonce_is_ignored() -> None:
    book = NonceBook([5])
    book.take(0)  # 5
    book.release(0, 2)
    assert book.holes(0) == []
    assert book.take(0) == 6


def test_release_of_a_nonce_skipped_by_resync_is_ignored() -> None:
    book = NonceBook([0])
    book.take(0)  # 0
    book.resync(0, 4)  # 1, 2, 3 belong to someone else
    book.release(0, 2)
    assert book.holes(0) == []
    assert book.take(0) == 4


def test_resync_forward_skips_to_the_pending_count_and_records_foreign_nonces() -> None:
    book = NonceBook([0, 0])
    book.take(0)  # 0
    book.take(0)  # 1
    book.resync(0, 5)
    assert book.next_nonce(0) == 5
    assert book.foreign[0] == {2, 3, 4}
    assert book.take(0) == 5
    # The other sender is untouched.
    assert book.next_nonce(1) == 0 and book.foreign[1] == set()


def test_resync_never_moves_backwards() -> None:
    book = NonceBook([0])
    for _ in range(6):
        book.take(0)
    book.resync(0, 2)
    assert book.next_nonce(0) == 6
    assert book.take(0) == 6
    assert book.foreign[0] == set()


def test_resync_drops_released_nonces_below_the_pending_count_as_foreign() -> None:
    book = NonceBook([0])
    for _ in range(6):
        book.take(0)  # 0..5
    book.release(0, 1)
    book.release(0, 3)
    book.release(0, 4)
    book.resync(0, 4)  # the node holds something at 1 and 3 already
    assert book.holes(0) == [4]
    assert book.foreign[0] == {1, 3}
    assert book.take(0) == 4
    assert book.take(0) == 6


def test_mark_foreign_records_the_nonce_without_reissuing_it() -> None:
    book = NonceBook([0])
    book.take(0)
    book.take(0)
    book.mark_foreign(0, 1)
    assert book.foreign[0] == {1}
    assert book.holes(0) == []
    assert book.take(0) == 2


def test_holes_is_a_copy() -> None:
    book = NonceBook([0])
    book.take(0)
    book.release(0, 0)
    book.holes(0).clear()
    assert book.holes(0) == [0]


# ----------------------------------------------------------------------------------------------
# a randomized model of how the edge uses the book

operations = st.lists(
    st.one_of(
        st.tuples(st.just("take"), st.integers(0, 1), st.integers(0, 0)),
        st.tuples(st.just("take"), st.integers(0, 1), st.integers(0, 0)),
        st.tuples(st.just("release"), st.integers(0, 1), st.integers(0, 1_000)),
        st.tuples(st.just("foreign"), st.integers(0, 1), st.integers(0, 1_000)),
        st.tuples(st.just("resync"), st.integers(0, 1), st.integers(-6, 6)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(starts=st.tuples(st.integers(0, 50), st.integers(0, 50)), ops=operations)
def test_nonce_book_never_double_issues_and_leaves_no_gap(starts: tuple[int, int], ops: list) -> None:
    book = NonceBook(list(starts))
    outstanding: list[set[int]] = [set(), set()]  # handed out, not given back
    given_back: list[set[int]] = [set(), set()]  # released by the edge, waiting to be reissued
    foreign: list[set[int]] = [set(), set()]  # consumed by someone else, as the edge learned

    def take(sender: int) -> int:
        fresh = book.next_nonce(sender)
        holes = book.holes(sender)
        nonce = book.take(sender)
        assert nonce not in outstanding[sender], f"nonce {nonce} handed out twice without a release"
        if holes:
            assert nonce == holes[0], "the smallest hole is filled first"
            assert nonce in given_back[sender]
            given_back[sender].discard(nonce)
        else:
            assert nonce == fresh
            assert book.next_nonce(sender) == fresh + 1
        outstanding[sender].add(nonce)
        return nonce

    for op, sender, argument in ops:
        if op == "take":
            take(sender)
        elif op in ("release", "foreign"):
            if not outstanding[sender]:
                continue
            nonce = sorted(outstanding[sender])[argument % len(outstanding[sender])]
            outstanding[sender].discard(nonce)
            if op == "release":
                book.release(sender, nonce)
                given_back[sender].add(nonce)
            else:
                book.mark_foreign(sender, nonce)
                foreign[sender].add(nonce)
        else:
            pending = max(0, book.next_nonce(sender) + argument)
            before = book.next_nonce(sender)
            book.resync(sender, pending)
            assert book.next_nonce(sender) == max(before, pending)
            foreign[sender].update(n for n in given_back[sender] if n < pending)
            given_back[sender] = {n for n in given_back[sender] if n >= pending}
            foreign[sender].update(range(before, pending))

        for s in (0, 1):
            assert book.holes(s) == sorted(given_back[s])
            assert book.foreign[s] == foreign[s]
            accounted = outstanding[s] | given_back[s] | foreign[s]
            assert set(range(starts[s], book.next_nonce(s))) <= accounted

    # Filling every hole leaves each sender's nonces contiguous up to next_nonce.
    for s in (0, 1):
        while book.holes(s):
            take(s)
        consumed = outstanding[s] | foreign[s]
        assert set(range(starts[s], book.next_nonce(s))) <= consumed
        assert all(n < book.next_nonce(s) for n in consumed)


# ----------------------------------------------------------------------------------------------
# unwinding nonces of transactions signed ahead and never sent


def available(next_nonce: int, holes: list[int]) -> tuple[int, list[int]]:
    holes = sorted(holes)
    while holes and holes[-1] == next_nonce - 1:
        next_nonce = holes.pop()
    return next_nonce, holes


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 20),
    taken_first=st.integers(0, 15),
    released=st.lists(st.integers(0, 14), max_size=6),
    signed_ahead=st.integers(0, 12),
)
def test_unwinding_the_newest_nonces_restores_the_book(
    start: int, taken_first: int, released: list[int], signed_ahead: int
) -> None:
    book = NonceBook([start])
    issued = [book.take(0) for _ in range(taken_first)]
    for index in released:
        if index < len(issued):
            book.release(0, issued[index])
    before = (book.next_nonce(0), book.holes(0))
    ahead = [book.take(0) for _ in range(signed_ahead)]
    for nonce in reversed(ahead):
        book.unwind(0, nonce)
    # The nonces the book can still hand out (its holes, and everything from "next" on) are the
    # same as before; a released nonce just below "next" may have folded back into it.
    assert available(book.next_nonce(0), book.holes(0)) == available(*before)
    again = [book.take(0) for _ in range(signed_ahead)]
    assert sorted(again) == sorted(set(again)), "a nonce handed out twice after unwinding"


def test_unwind_gives_back_a_reissued_hole_and_moves_next_back() -> None:
    book = NonceBook([5])
    for _ in range(5):
        book.take(0)  # 5..9
    book.release(0, 6)
    assert [book.take(0), book.take(0), book.take(0)] == [6, 10, 11]
    book.unwind(0, 11)
    book.unwind(0, 10)
    book.unwind(0, 6)
    assert book.next_nonce(0) == 10
    assert book.holes(0) == [6]
