"""Faults that break one promise of a chain's JSON-RPC view each, deterministically, with a record.

Why they exist: an invariant that has never failed has never been tested. Each fault here sits in an
:class:`~pytest_gashammer.fault.rpc_proxy.RpcProxy` between the edges and a healthy node and breaks
exactly one promise (a transaction the node accepted is included; a transaction is included once; a
receipt tells the truth; blocks link and move forward in time), so a test can assert that the oracle
fails exactly the invariant that guards it, names exactly the items the fault touched
(:attr:`Fault.affected`), and leaves every other invariant passed.

The model, meant to grow into faults on a timeline (latency, errors, partitions):

- The proxy splits every HTTP request (a single JSON-RPC call or a batch) into :class:`RpcCall`
  objects. Before forwarding, each fault's :meth:`RpcFault.on_request` sees every call and may answer
  it locally (:meth:`RpcCall.reply`: the call is then never forwarded) or add delay
  (:attr:`RpcCall.delay`). After the upstream answered, each fault's :meth:`RpcFault.on_answer` sees
  every answered call and may rewrite :attr:`RpcCall.answer` in place.
- Choices are deterministic: the nth candidate, every kth, one in k by hash (the same choice whatever
  the arrival order, so it survives several edges and reruns), or listed keys, capped by ``count``.
- A fault chooses only while armed (:meth:`Fault.arm`, :meth:`Fault.disarm`); what it already chose
  stays broken the same way every time it is served, so the view it fakes is self-consistent.
- Everything runs on the proxy's event loop thread; :attr:`Fault.affected` and :attr:`Fault.events`
  return copies and are safe to read from the test's thread.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Collection, Hashable
from typing import Any, ClassVar

from pytest_gashammer.chain.keccak import keccak256

__all__ = [
    "BLOCK_METHODS",
    "BlockFault",
    "BreakParentHash",
    "DropTransactions",
    "DuplicateInclusion",
    "Fault",
    "Pick",
    "ReorderBlockTimestamps",
    "RpcCall",
    "RpcFault",
    "TransactionFault",
    "WrongReceiptBlock",
    "WrongReceiptStatus",
]

BLOCK_METHODS = frozenset({"eth_getBlockByNumber", "eth_getBlockByHash"})
"""Methods whose answer is a block object; block faults rewrite only these."""

_SEEN_LIMIT = 200_000  # candidates remembered to count each one once; older ones are forgotten
_NO_ID = object()  # a JSON-RPC notification carries no id and gets no answer


# --------------------------------------------------------------------------------------- the call


@dataclasses.dataclass(eq=False)
class RpcCall:
    """One JSON-RPC call passing through the proxy, as faults see it (a batch holds several).

    ``answer`` is the JSON-RPC response object the client will get, carrying the client's own id;
    ``None`` until the upstream answered or a fault replied. ``forward`` is False once a fault
    answered locally. ``delay`` (seconds) holds the whole HTTP request back before it is forwarded;
    the largest delay of a batch's calls applies.
    """

    method: str
    params: list[Any]
    request_id: Any = _NO_ID
    index: int = 0
    answer: dict[str, Any] | None = None
    forward: bool = True
    delay: float = 0.0
    answered_by: str | None = None

    @property
    def is_notification(self) -> bool:
        return self.request_id is _NO_ID

    @property
    def has_result(self) -> bool:
        return self.answer is not None and "result" in self.answer and self.answer.get("error") is None

    @property
    def result(self) -> Any:
        """The answer's ``result`` (``None`` when there is none: no answer yet, or an error)."""
        return self.answer.get("result") if self.has_result and self.answer is not None else None

    def reply(self, result: Any, *, by: str) -> None:
        """Answer with ``result`` locally: the call is not forwarded to the upstream."""
        self.answer = {"jsonrpc": "2.0", "id": self._answer_id(), "result": result}
        self.forward = False
        self.answered_by = by

    def reply_error(self, code: int, message: str, *, by: str, data: Any = None) -> None:
        """Answer with a JSON-RPC error locally: the call is not forwarded to the upstream."""
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        self.answer = {"jsonrpc": "2.0", "id": self._answer_id(), "error": error}
        self.forward = False
        self.answered_by = by

    def _answer_id(self) -> Any:
        return None if self.request_id is _NO_ID else self.request_id

    @classmethod
    def from_request(cls, item: dict[str, Any], index: int) -> RpcCall:
        params = item.get("params")
        return cls(
            method=str(item.get("method", "")),
            params=list(params) if isinstance(params, list) else ([] if params is None else [params]),
            request_id=item.get("id", _NO_ID),
            index=index,
        )


# ------------------------------------------------------------------------------------- selection


class Pick:
    """Which candidates of a stream a fault takes: the nth, every kth, one in k by value, or listed keys.

    Candidates are counted once each, in the order the proxy first sees them (the caller deduplicates).
    ``count`` caps how many are taken; ``nth`` takes one unless ``count`` says otherwise.
    """

    def __init__(
        self,
        owner: str,
        *,
        nth: int | None = None,
        every: int | None = None,
        one_in: int | None = None,
        keys: Collection[Hashable] | None = None,
        keys_name: str = "keys",
        count: int | None = None,
        min_every: int = 1,
        allow_one_in: bool = True,
    ) -> None:
        given = [
            name
            for name, value in (("nth", nth), ("every", every), ("one_in", one_in), (keys_name, keys))
            if value is not None
        ]
        if len(given) != 1:
            choices = "nth=, every=, " + ("one_in=, " if allow_one_in else "") + f"or {keys_name}="
            raise ValueError(
                f"{owner}: give exactly one of {choices} (got {', '.join(given) or 'none'}); "
                f"e.g. {owner}(every=10, count=3)"
            )
        for name, value, low in (("nth", nth, 1), ("every", every, min_every), ("one_in", one_in, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(
                    f"{owner}: {name}={value!r} must be an integer >= {low}, e.g. {name}={max(low, 5)}"
                )
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ValueError(f"{owner}: count={count!r} must be a positive integer, or None for no cap")
        self.nth = nth
        self.every = every
        self.one_in = one_in
        self.keys: frozenset[Hashable] | None = frozenset(keys) if keys is not None else None
        self.count = 1 if nth is not None and count is None else count
        self.offered = 0
        self.taken = 0

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.taken >= self.count

    def offer(self, key: Hashable, value: int = 0) -> bool:
        """Count one new candidate (``value`` is what ``one_in`` divides); True if it is taken."""
        if self.exhausted:
            return False
        self.offered += 1
        if self.keys is not None:
            taken = key in self.keys
        elif self.nth is not None:
            taken = self.offered == self.nth
        elif self.every is not None:
            taken = self.offered % self.every == 0
        else:
            assert self.one_in is not None
            taken = value % self.one_in == 0
        if taken:
            self.taken += 1
        return taken

    def describe(self) -> str:
        if self.keys is not None:
            what = f"{len(self.keys)} listed"
        elif self.nth is not None:
            what = f"nth={self.nth}"
        elif self.every is not None:
            what = f"every={self.every}"
        else:
            what = f"one_in={self.one_in}"
        return what + (f", count={self.count}" if self.count is not None and self.nth is None else "")


class _Seen:
    """Remembers up to ``limit`` keys, forgetting the oldest, so every candidate is offered once."""

    def __init__(self, limit: int = _SEEN_LIMIT) -> None:
        self._keys: dict[Hashable, None] = {}
        self._limit = limit

    def add(self, key: Hashable) -> bool:
        """True if ``key`` is new."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self._limit:
            del self._keys[next(iter(self._keys))]
        return True


# ----------------------------------------------------------------------------------------- bases


class Fault:
    """Base of every fault: a name, the promise it breaks, an armed switch, and a record.

    :attr:`affected` lists the keys the fault actually broke, once each, in order (transaction hashes,
    block numbers or sequence numbers); :attr:`events` holds one dict per key with the details.
    """

    breaks: ClassVar[str] = ""
    """The promise this fault breaks, in words."""
    caught_by: ClassVar[tuple[str, ...]] = ()
    """The invariants (or SLO objectives) that must fail when this fault acts."""

    def __init__(self, *, armed: bool = True) -> None:
        self._armed = armed
        self._lock = threading.Lock()
        self._affected: list[Any] = []
        self._affected_set: set[Any] = set()
        self._events: list[dict[str, Any]] = []

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def armed(self) -> bool:
        return self._armed

    def arm(self) -> None:
        """Start choosing new victims (e.g. from ``EdgeRuntime(start_gate=...)``, once setup is done)."""
        self._armed = True

    def disarm(self) -> None:
        """Stop choosing new victims; the ones already chosen stay broken the same way."""
        self._armed = False

    @property
    def affected(self) -> list[Any]:
        with self._lock:
            return list(self._affected)

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(event) for event in self._events]

    def _record(self, key: Any, **detail: Any) -> None:
        """Note that ``key`` was broken (once per key; later calls for the same key are ignored)."""
        with self._lock:
            if key in self._affected_set:
                return
            self._affected_set.add(key)
            self._affected.append(key)
            self._events.append(detail)

    def _was_recorded(self, key: Any) -> bool:
        with self._lock:
            return key in self._affected_set

    def __repr__(self) -> str:
        state = "armed" if self._armed else "disarmed"
        return f"<{self.name} {state}, {len(self._affected)} affected>"


class RpcFault(Fault):
    """A fault on the JSON-RPC path: override :meth:`on_request` and/or :meth:`on_answer`."""

    def on_request(self, call: RpcCall) -> None:
        """Before forwarding: may :meth:`RpcCall.reply` locally or add :attr:`RpcCall.delay`."""

    def on_answer(self, call: RpcCall) -> None:
        """After the answer is known: may rewrite :attr:`RpcCall.answer` in place."""


# ---------------------------------------------------------------------------- transaction faults


def raw_transaction_param(call: RpcCall) -> bytes | None:
    """The signed bytes of an ``eth_sendRawTransaction`` call, ``None`` if the call is malformed."""
    if call.method != "eth_sendRawTransaction" or not call.params:
        return None
    text = call.params[0]
    if not isinstance(text, str) or not text.startswith(("0x", "0X")) or len(text) < 4:
        return None
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        return None


def transaction_hash(raw: bytes) -> str:
    """The hash a node answers for ``raw``: keccak-256 of the signed (typed) envelope."""
    return "0x" + keccak256(raw).hex()


def sender_of(raw: bytes) -> str | None:
    """The lowercase address that signed ``raw``, ``None`` if it cannot be recovered."""
    from eth_account import Account

    try:
        return str(Account.recover_transaction(raw)).lower()
    except Exception:  # any undecodable transaction is simply "no known sender"
        return None


def _lower(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) else None


class TransactionFault(RpcFault):
    """Chooses transactions as they are sent (``eth_sendRawTransaction``) and breaks a promise about them.

    Choose with exactly one of ``nth`` (the nth transaction sent, one), ``every`` (every kth),
    ``one_in`` (those whose hash is divisible by k: independent of arrival order) or ``hashes``
    (exactly these, whether or not they are sent through this proxy), capped by ``count``.
    ``exclude_from`` / ``only_from`` filter by signer (recovered from the signature, about 0.3 ms per
    transaction, only when a filter is given): exclude the funder so setup transfers are never chosen.
    """

    def __init__(
        self,
        *,
        nth: int | None = None,
        every: int | None = None,
        one_in: int | None = None,
        hashes: Collection[str] | None = None,
        count: int | None = None,
        exclude_from: Collection[str] = (),
        only_from: Collection[str] | None = None,
        armed: bool = True,
    ) -> None:
        super().__init__(armed=armed)
        self._pick = Pick(
            self.name,
            nth=nth,
            every=every,
            one_in=one_in,
            keys=None if hashes is None else {h.lower() for h in hashes},
            keys_name="hashes",
            count=count,
        )
        self.exclude_from = frozenset(a.lower() for a in exclude_from)
        self.only_from = None if only_from is None else frozenset(a.lower() for a in only_from)
        self._seen = _Seen()
        self._chosen: set[str] = set()

    @property
    def chosen(self) -> list[str]:
        """Transaction hashes chosen so far (a chosen one is in :attr:`affected` once the fault acted)."""
        with self._lock:
            return sorted(self._chosen)

    def _sender_allowed(self, raw: bytes) -> bool:
        if not self.exclude_from and self.only_from is None:
            return True
        sender = sender_of(raw)
        if sender is None:
            return False
        if sender in self.exclude_from:
            return False
        return self.only_from is None or sender in self.only_from

    def _consider(self, tx_hash: str, raw: bytes | None) -> bool:
        """Whether ``tx_hash`` is chosen, offering it to the pick the first time it is seen while armed."""
        if tx_hash in self._chosen:
            return True
        if not self._armed or not self._seen.add(tx_hash):
            return False
        if raw is not None and not self._sender_allowed(raw):
            return False
        if self._pick.offer(tx_hash, int(tx_hash, 16)):
            with self._lock:
                self._chosen.add(tx_hash)
            return True
        return False

    def _is_chosen(self, tx_hash: str | None) -> bool:
        """At answer time: chosen when sent, or (``hashes=`` mode) listed and offered now."""
        if tx_hash is None:
            return False
        if tx_hash in self._chosen:
            return True
        if self._pick.keys is not None and tx_hash in self._pick.keys:
            return self._consider(tx_hash, None)
        return False

    def on_request(self, call: RpcCall) -> None:
        raw = raw_transaction_param(call)
        if raw is None:
            return
        tx_hash = transaction_hash(raw)
        if self._pick.keys is not None and tx_hash not in self._pick.keys:
            return
        if self._consider(tx_hash, raw):
            self._on_send(call, tx_hash)

    def _on_send(self, call: RpcCall, tx_hash: str) -> None:
        """A chosen transaction is being sent (again, if the client retries)."""

    def __repr__(self) -> str:
        state = "armed" if self._armed else "disarmed"
        return f"<{self.name}({self._pick.describe()}) {state}, {len(self._affected)} affected>"


class DropTransactions(TransactionFault):
    """Accepts the chosen transactions with their correct hash but never forwards them to the node.

    Breaks "a transaction the node accepted is included": the client got a hash, the chain never sees
    it. Caught by ``inclusion``, which lists :attr:`affected` as lost. A dropped nonce also strands the
    sender's later transactions in the pool (they are lost too, and named by ``inclusion`` as well);
    give each sender one transaction (``senders`` at least the transaction count) to see only the
    dropped ones.
    """

    breaks = "an accepted transaction is included"
    caught_by = ("inclusion",)

    def _on_send(self, call: RpcCall, tx_hash: str) -> None:
        call.reply(tx_hash, by=self.name)
        self._record(tx_hash, tx_hash=tx_hash)


class DuplicateInclusion(TransactionFault):
    """Reports each chosen transaction a second time: in the next block served after the one holding it
    (default), or twice in its own block (``same_block=True``).

    Breaks "a transaction is included once". Caught by ``no_duplicate_inclusion``, which lists
    :attr:`affected`. Only the chain view lies: the node, receipts and the feed are untouched.
    """

    breaks = "a transaction is included exactly once"
    caught_by = ("no_duplicate_inclusion",)

    def __init__(self, *, same_block: bool = False, **choice: Any) -> None:
        super().__init__(**choice)
        self.same_block = same_block
        self._origin: dict[str, tuple[int, Any]] = {}  # chosen hash -> (block it is in, its entry)
        self._pending: dict[str, int] = {}  # chosen hash -> its block, waiting for a later block
        self._again: dict[int, list[str]] = {}  # block number -> hashes reported again in it

    def on_answer(self, call: RpcCall) -> None:
        if call.method not in BLOCK_METHODS:
            return
        block = call.result
        number = _block_number(block)
        if number is None:
            return
        transactions = block["transactions"]
        for tx_hash, origin in list(self._pending.items()):
            if number > origin:
                del self._pending[tx_hash]
                self._again.setdefault(number, []).append(tx_hash)
                self._record(tx_hash, tx_hash=tx_hash, block=origin, again_in=number)
        for entry in list(transactions):
            found = _entry_hash(entry)
            if found is None or found in self._origin or not self._is_chosen(found):
                continue
            self._origin[found] = (number, entry)
            if self.same_block:
                self._again.setdefault(number, []).append(found)
                self._record(found, tx_hash=found, block=number, again_in=number)
            else:
                self._pending[found] = number
        for tx_hash in self._again.get(number, ()):
            transactions.append(_entry_copy(self._origin[tx_hash][1], block, len(transactions)))


class WrongReceiptStatus(TransactionFault):
    """Flips the ``status`` of the chosen transactions' receipts (0x1 to 0x0, 0x0 to 0x1).

    Breaks "a receipt tells the truth". Caught by ``receipt_status``, which names :attr:`affected`
    (every chosen transaction whose receipt was asked for; ``eth_getBlockReceipts`` too).
    """

    breaks = "a receipt reports the transaction's real outcome"
    caught_by = ("receipt_status",)

    def on_answer(self, call: RpcCall) -> None:
        for receipt in _receipts_of(call):
            if not isinstance(receipt, dict):
                continue
            tx_hash = _lower(receipt.get("transactionHash"))
            status = receipt.get("status")
            if status not in ("0x1", "0x0") or not self._is_chosen(tx_hash):
                continue
            flipped = "0x0" if status == "0x1" else "0x1"
            receipt["status"] = flipped
            self._record(tx_hash, tx_hash=tx_hash, status=status, reported=flipped)


def _receipts_of(call: RpcCall) -> list[Any]:
    """The receipts in a receipt method's answer (none for another method)."""
    if call.method == "eth_getTransactionReceipt":
        return [call.result]
    if call.method == "eth_getBlockReceipts" and isinstance(call.result, list):
        return call.result
    return []


class WrongReceiptBlock(TransactionFault):
    """Makes the chosen transactions' receipts point at another block: ``blockNumber`` ``by`` blocks
    later (default 1) and a ``blockHash`` no block has (their logs too).

    Breaks "a receipt names the block that holds the transaction". Caught by ``receipt_block``, which
    names :attr:`affected` (every chosen transaction whose receipt was served; ``eth_getBlockReceipts``
    too, so with a receipt sample it can include chosen transactions off the sample). Status and gas
    stay true, so the other receipt checks pass.
    """

    breaks = "a receipt names the block that holds the transaction"
    caught_by = ("receipt_block",)

    def __init__(self, *, by: int = 1, **choice: Any) -> None:
        if isinstance(by, bool) or not isinstance(by, int) or by == 0:
            raise ValueError(f"WrongReceiptBlock: by={by!r} must be a non-zero number of blocks, e.g. 1")
        super().__init__(**choice)
        self.by = by

    def on_answer(self, call: RpcCall) -> None:
        for receipt in _receipts_of(call):
            if not isinstance(receipt, dict):
                continue
            tx_hash = _lower(receipt.get("transactionHash"))
            number_text, block_hash = receipt.get("blockNumber"), receipt.get("blockHash")
            if not isinstance(number_text, str) or not isinstance(block_hash, str):
                continue
            if not self._is_chosen(tx_hash):
                continue
            try:
                number = int(number_text, 16)
            except ValueError:
                continue
            # The same lie every time it is served: derived from the true block alone.
            reported_number = hex(max(number + self.by, 0))
            reported_hash = "0x" + keccak256(b"gashammer:wrong-receipt-block:" + block_hash.encode()).hex()
            receipt["blockNumber"], receipt["blockHash"] = reported_number, reported_hash
            for log in receipt.get("logs") or ():
                if isinstance(log, dict):
                    log["blockNumber"], log["blockHash"] = reported_number, reported_hash
            self._record(
                tx_hash,
                tx_hash=tx_hash,
                block_number=number_text,
                block_hash=block_hash,
                reported_number=reported_number,
                reported_hash=reported_hash,
            )


# ---------------------------------------------------------------------------------- block faults


def _block_number(block: Any) -> int | None:
    if not isinstance(block, dict) or not isinstance(block.get("transactions"), list):
        return None
    try:
        return int(block["number"], 16)
    except (KeyError, TypeError, ValueError):
        return None


def _entry_hash(entry: Any) -> str | None:
    """The hash of a block's ``transactions`` entry: a hash string, or a full transaction object."""
    if isinstance(entry, str):
        return entry.lower()
    if isinstance(entry, dict):
        return _lower(entry.get("hash"))
    return None


def _entry_copy(entry: Any, block: dict[str, Any], index: int) -> Any:
    """``entry`` as it would appear at ``index`` of ``block`` (full objects carry their position)."""
    if not isinstance(entry, dict):
        return entry
    return {
        **entry,
        "blockHash": block.get("hash"),
        "blockNumber": block.get("number"),
        "transactionIndex": hex(index),
    }


class BlockFault(RpcFault):
    """Chooses blocks by number, as they are first served while armed, and rewrites them.

    Choose with exactly one of ``nth`` (the nth distinct block served), ``every`` (every kth) or
    ``numbers`` (exactly these), capped by ``count``. Arm it once setup is done (e.g.
    ``EdgeRuntime(start_gate=fault.arm)`` with ``armed=False``) so that only blocks the run follows are
    counted. A chosen block is rewritten the same way every time it is served.
    """

    _min_every: ClassVar[int] = 1

    def __init__(
        self,
        *,
        nth: int | None = None,
        every: int | None = None,
        numbers: Collection[int] | None = None,
        count: int | None = None,
        armed: bool = True,
    ) -> None:
        super().__init__(armed=armed)
        self._pick = Pick(
            self.name,
            nth=nth,
            every=every,
            keys=numbers,
            keys_name="numbers",
            count=count,
            min_every=self._min_every,
            allow_one_in=False,
        )
        self._seen = _Seen()
        self._chosen: set[int] = set()

    def on_answer(self, call: RpcCall) -> None:
        if call.method not in BLOCK_METHODS:
            return
        block = call.result
        number = _block_number(block)
        if number is None:
            return
        if number not in self._chosen:
            if not self._armed or not self._seen.add(number) or not self._pick.offer(number, number):
                return
            self._chosen.add(number)
        detail = self._rewrite(block, number)
        if detail is not None:
            self._record(number, block=number, **detail)

    def _rewrite(self, block: dict[str, Any], number: int) -> dict[str, Any] | None:
        """Rewrite ``block`` in place; return what changed (``None`` if nothing could be)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        state = "armed" if self._armed else "disarmed"
        return f"<{self.name}({self._pick.describe()}) {state}, {len(self._affected)} affected>"


class BreakParentHash(BlockFault):
    """Reports a wrong ``parentHash`` for the chosen blocks (a hash no block has).

    Breaks "each block's parent is the previous block". Caught by ``block_continuity`` (a broken
    parent link at each block in :attr:`affected`).
    """

    breaks = "each block's parentHash is the previous block's hash"
    caught_by = ("block_continuity",)

    def _rewrite(self, block: dict[str, Any], number: int) -> dict[str, Any] | None:
        parent = block.get("parentHash")
        if not isinstance(parent, str) or not parent.startswith("0x"):
            return None
        try:
            original = bytes.fromhex(parent[2:])
        except ValueError:
            return None
        wrong = "0x" + keccak256(b"gashammer:broken-parent:" + original).hex()
        block["parentHash"] = wrong
        return {"parent_hash": parent.lower(), "reported": wrong}


class ReorderBlockTimestamps(BlockFault):
    """Reports the chosen blocks ``back_by`` seconds (default an hour) earlier, so each one's timestamp
    goes below its parent's.

    Breaks "block timestamps never go backwards". Caught by ``block_timestamps`` at each block in
    :attr:`affected` (and only there: the block after a moved one is later than it). Two adjacent
    blocks would hide each other, so ``every`` must be at least 2 and ``numbers`` not adjacent.
    """

    breaks = "block timestamps never decrease"
    caught_by = ("block_timestamps",)
    _min_every = 2

    def __init__(self, *, back_by: int = 3600, numbers: Collection[int] | None = None, **choice: Any) -> None:
        if isinstance(back_by, bool) or not isinstance(back_by, int) or back_by < 1:
            raise ValueError(
                f"ReorderBlockTimestamps: back_by={back_by!r} must be a positive number of seconds"
            )
        if numbers is not None:
            ordered = sorted(numbers)
            adjacent = [b for a, b in zip(ordered, ordered[1:], strict=False) if b == a + 1]
            if adjacent:
                raise ValueError(
                    f"ReorderBlockTimestamps: numbers {adjacent[0] - 1} and {adjacent[0]} are adjacent, so the "
                    "second would not go backwards; leave a block between chosen ones"
                )
        super().__init__(numbers=numbers, **choice)
        self.back_by = back_by

    def _rewrite(self, block: dict[str, Any], number: int) -> dict[str, Any] | None:
        try:
            timestamp = int(block["timestamp"], 16)
        except (KeyError, TypeError, ValueError):
            return None
        reported = max(0, timestamp - self.back_by)
        block["timestamp"] = hex(reported)
        return {"timestamp": timestamp, "reported": reported}
