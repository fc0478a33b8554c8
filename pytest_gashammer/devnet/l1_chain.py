"""A devnet's L1: the one the embedded devnet starts (:class:`EmbeddedL1`), or one the options name
(:func:`named_l1`).

The embedded devnet's L1 is a second anvil (chain id :data:`L1_CHAIN_ID`, no accounts of its own)
holding the real Nitro Bridge and SequencerInbox and the rollup stand-in
(:func:`~pytest_gashammer.l1.contracts.deploy_l1`), and a
:class:`~pytest_gashammer.l1.poster.BatchPoster` that posts the L2's blocks to it as Nitro batches
(:class:`~pytest_gashammer.l1.l2_batches.L2BlockEncoder`), asserts and confirms them. The L1
automines: a posting transaction is in a block the moment it arrives, so how far the L1 lags the L2
measures the batch poster, not an L1 block time; ``block_time`` switches to interval mining.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_gashammer.chain.rpc import RpcError, TransportError, call
from pytest_gashammer.devnet.anvil import launch_anvil
from pytest_gashammer.devnet.base import FUNDER_BALANCE_WEI
from pytest_gashammer.devnet.process import ManagedProcess
from pytest_gashammer.errors import DevnetError
from pytest_gashammer.l1.endpoint import L1Endpoint, address_problem, l1_url_problem
from pytest_gashammer.options import L1_URL, ROLLUP, SEQUENCER_INBOX

if TYPE_CHECKING:
    from pytest_gashammer.l1.contracts import L1Deployment
    from pytest_gashammer.l1.poster import BatchPoster

#: The embedded devnet's L1 chain id (a local development chain's).
L1_CHAIN_ID = 1337
#: Devnet keys, public, never for real funds: keccak256("gashammer devnet L1 deployer") deploys the
#: contracts and owns the rollup; keccak256("gashammer devnet L1 batch poster") posts batches and is
#: the rollup's validator. Neither is the L2 funder's key, so L1 and L2 nonces never mix.
L1_DEPLOYER_KEY = "0x1232a913a2dc631bcce8f376fb49c796b3516c05b8f7fa3e3a95f3962e41c906"
L1_POSTER_KEY = "0x9678c48b4f299c5c14ca0a3d8262d0828f96a72031751c15171b1df1de45521b"
#: The batch poster's defaults on the embedded devnet: a batch a second, an assertion every five
#: batches, each confirmed two seconds after it was made.
DEFAULT_BATCH_INTERVAL = 1.0
DEFAULT_ASSERT_EVERY = 5
DEFAULT_CONFIRM_DELAY = 2.0
#: How long closing waits for the last batch (the L2 blocks made since the poster's last tick).
FINAL_BATCH_SECONDS = 10.0
#: How long the poster goes on failing before it gives up: longer than any node fault (a paused or
#: restarting L2 fails every tick; the poster carries on from where the inbox stands once it is back).
GIVE_UP_AFTER_SECONDS = 900.0
#: How many poster failures are kept as incidents (one line each).
MAX_INCIDENTS = 100

logger = logging.getLogger(__name__)


def poster_settings_problem(
    batch_interval: float, assert_every: int, confirm_delay: float, block_time: float | None
) -> str | None:
    """What is wrong with the embedded L1's settings, or None."""
    if not batch_interval > 0:
        return f"the batch interval must be a positive number of seconds, got {batch_interval!r}"
    if assert_every < 1:
        return f"assert_every must be at least 1 batch, got {assert_every!r}"
    if not confirm_delay >= 0:
        return f"confirm_delay must be zero or more seconds, got {confirm_delay!r}"
    if block_time is not None and not block_time > 0:
        return f"the L1 block time must be positive, or None to automine; got {block_time!r}"
    return None


def _address_of(key: str) -> str:
    from pytest_gashammer.chain.signer import FastSigner

    return FastSigner(key, L1_CHAIN_ID).address.lower()


class EmbeddedL1:
    """The embedded devnet's L1: anvil, the Nitro contracts on it, and the batch poster of ``l2_rpc_url``.

    :meth:`start` stops whatever it started when a step fails; :meth:`close` posts what the L2 made
    since the last batch, stops the poster, then the L1 anvil. The stopped poster's records stay
    readable.
    """

    def __init__(
        self,
        anvil_binary: Path,
        *,
        workdir: Path,
        startup_timeout: float = 30.0,
        block_time: float | None = None,
        batch_interval: float = DEFAULT_BATCH_INTERVAL,
        assert_every: int = DEFAULT_ASSERT_EVERY,
        confirm_delay: float = DEFAULT_CONFIRM_DELAY,
        known_raw: Callable[[str], Sequence[bytes] | None] | None = None,
    ) -> None:
        """``known_raw`` gives the raw transactions of an L2 block by hash where something already has
        them (the devnet's feed relay); the poster then asks the L2 for block headers only."""
        problem = poster_settings_problem(batch_interval, assert_every, confirm_delay, block_time)
        if problem is not None:
            raise ValueError(problem)
        self.anvil_binary = anvil_binary
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.block_time = block_time
        self.batch_interval = batch_interval
        self.assert_every = assert_every
        self.confirm_delay = confirm_delay
        self.known_raw = known_raw
        self.deployment: L1Deployment | None = None
        self.endpoint: L1Endpoint | None = None
        self.poster: BatchPoster | None = None
        self._process: ManagedProcess | None = None
        self._port: int | None = None
        self._incidents: list[str] = []
        self._failures_seen = 0
        self._error_seen = False
        self._incidents_lock = threading.Lock()
        self._closed = False

    @property
    def rpc_url(self) -> str:
        if self._port is None:
            raise DevnetError("the embedded devnet's L1 is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _argv(self, port: int) -> list[str]:
        mining = ["--block-time", str(self.block_time)] if self.block_time is not None else []
        return [
            str(self.anvil_binary),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--chain-id", str(L1_CHAIN_ID),
            "--accounts", "0",
            "--quiet",
            *mining,
        ]  # fmt: skip

    def start(self, l2_rpc_url: str) -> EmbeddedL1:
        """Start the L1 anvil, fund the two accounts, deploy, and start posting ``l2_rpc_url``'s blocks."""
        from pytest_gashammer.devnet.nitro_contracts import find_nitro_contracts
        from pytest_gashammer.l1.contracts import deploy_l1
        from pytest_gashammer.l1.l2_batches import L2BlockEncoder
        from pytest_gashammer.l1.poster import BatchPoster

        try:
            package = find_nitro_contracts()  # first: it needs no process, and may need npm
            self._process, self._port = launch_anvil(
                self._argv,
                chain_id=L1_CHAIN_ID,
                log_dir=self.workdir,
                timeout=self.startup_timeout,
                name="L1 anvil",
            )
            url = self.rpc_url
            poster_address = _address_of(L1_POSTER_KEY)
            for address in (_address_of(L1_DEPLOYER_KEY), poster_address):
                call(url, "anvil_setBalance", [address, hex(FUNDER_BALANCE_WEI)])
            deployment = deploy_l1(
                url, deployer_key=L1_DEPLOYER_KEY, batch_poster=poster_address, package_dir=package
            )
            self.deployment = deployment
            # Receipts come at once on an automining L1; an interval-mining one takes up to a block.
            receipt_timeout = 10.0 + 2 * (self.block_time or 0.0)
            self.poster = BatchPoster(
                url,
                deployment.sequencer_inbox,
                L1_POSTER_KEY,
                l2_rpc_url=l2_rpc_url,
                encode=L2BlockEncoder(l2_rpc_url, l1_rpc_url=url, known_raw=self.known_raw),
                full_transactions=False,
                rollup=deployment.rollup,
                interval=self.batch_interval,
                assert_every=self.assert_every,
                confirm_delay=self.confirm_delay,
                receipt_timeout=receipt_timeout,
                failure_limit=math.ceil(GIVE_UP_AFTER_SECONDS / self.batch_interval),
            ).start()
            self.endpoint = L1Endpoint(
                rpc_url=url,
                chain_id=deployment.chain_id,
                sequencer_inbox=deployment.sequencer_inbox,
                bridge=deployment.bridge,
                rollup=deployment.rollup,
                deployed_at_block=deployment.deployed_at_block,
                owned=True,
                l2_internal_transactions=False,  # the L2 is anvil
            )
        except BaseException:
            self.close(final_batch=False)
            raise
        logger.info(
            "embedded devnet L1: %s, inbox %s, deployed in %.3f s",
            self.endpoint.rpc_url,
            self.endpoint.sequencer_inbox,
            deployment.deploy_seconds,
        )
        return self

    def incidents(self) -> list[str]:
        """The poster's failures, and why it stopped if it did, oldest first (append-only)."""
        with self._incidents_lock:
            poster = self.poster
            if poster is not None and not self._closed:
                self._take_failures(poster)
            return list(self._incidents)

    def _take_failures(self, poster: BatchPoster) -> None:
        for _attempt in range(3):  # the count and the list are read apart: again if one came between
            count = poster.failure_count
            latest = poster.failures()
            if poster.failure_count == count:
                break
        else:
            return  # failing right now: the next call takes them
        new = count - self._failures_seen
        if new > 0:
            kept = latest[-new:] if new <= len(latest) else latest
            if new > len(kept):
                self._note(f"L1 batch poster: {new - len(kept)} earlier failures not kept")
            # A node fault fails tick after tick alike: one line for each run of the same failure.
            for failure, repeats in _runs(kept):
                times = f" ({repeats} times)" if repeats > 1 else ""
                self._note(f"L1 batch poster: {failure}{times}")
            self._failures_seen = count
        error = poster.error
        if error is not None and not self._error_seen:
            self._error_seen = True
            self._note(f"L1 {error}")

    def _note(self, message: str) -> None:
        if len(self._incidents) < MAX_INCIDENTS:
            self._incidents.append(" ".join(message.split()))

    def close(self, *, final_batch: bool = True) -> None:
        """Post the L2 blocks made since the last batch (at most :data:`FINAL_BATCH_SECONDS`; a failure
        is logged), stop the poster, stop the L1 anvil. Idempotent."""
        poster = self.poster
        if poster is not None and not self._closed:
            if final_batch and poster.error is None:
                self._post_final_batch(poster)
            poster.stop(timeout=FINAL_BATCH_SECONDS)
            with self._incidents_lock:
                self._take_failures(poster)
        self._closed = True
        if self._process is not None:
            self._process.stop()
            self._process = None

    @staticmethod
    def _post_final_batch(poster: BatchPoster) -> None:
        failure: list[BaseException] = []

        def post() -> None:
            try:
                poster.post_once()
            except Exception as exc:  # logged below: closing goes on
                failure.append(exc)

        thread = threading.Thread(target=post, name="gashammer-final-batch", daemon=True)
        thread.start()
        thread.join(FINAL_BATCH_SECONDS)
        if thread.is_alive():
            logger.warning(
                "the final L1 batch did not finish within %.0f s; the L1 is stopped under it",
                FINAL_BATCH_SECONDS,
            )
        elif failure:
            logger.warning("the final L1 batch was not posted: %s", failure[0])


def _runs(texts: list[str]) -> list[tuple[str, int]]:
    return [(text, len(list(group))) for text, group in itertools.groupby(texts)]


def named_l1(
    rpc_url: str, sequencer_inbox: str, rollup: str | None = None, *, timeout: float = 10.0
) -> L1Endpoint:
    """The L1 ``--gashammer-l1-url`` names (``owned=False``), checked: its chain id, and the
    SequencerInbox's ``bridge()`` and ``rollup()`` (the rollup, when not given, is the inbox's)."""
    from pytest_gashammer.l1.abi import call_data, decode

    for option, problem in (
        (L1_URL, l1_url_problem(rpc_url)),
        (SEQUENCER_INBOX, address_problem(sequencer_inbox)),
        (ROLLUP, address_problem(rollup) if rollup is not None else None),
    ):
        if problem is not None:
            raise DevnetError(f"{option}: {problem}")
    rpc_url = rpc_url.strip()
    inbox = sequencer_inbox.strip().lower()
    try:
        chain_id = int(call(rpc_url, "eth_chainId", timeout=timeout), 16)
    except TransportError as exc:
        raise DevnetError(
            f"{L1_URL} {rpc_url} is unreachable ({exc}); check the URL and that the L1 node runs"
        ) from None
    except (RpcError, ValueError, TypeError) as exc:
        raise DevnetError(
            f"{L1_URL} {rpc_url} answered eth_chainId badly ({exc}); is it an EVM node?"
        ) from None

    def read_address(signature: str) -> str:
        try:
            answer = call(
                rpc_url,
                "eth_call",
                [{"to": inbox, "data": "0x" + call_data(signature).hex()}, "latest"],
                timeout=timeout,
            )
            return str(decode(["address"], bytes.fromhex(str(answer).removeprefix("0x")))[0]).lower()
        except (RpcError, TransportError, ValueError, TypeError) as exc:
            raise DevnetError(
                f"{SEQUENCER_INBOX} {inbox}: no SequencerInbox answers {signature} on {rpc_url} ({exc}); "
                "check the address and the L1"
            ) from None

    bridge = read_address("bridge()")
    inbox_rollup = read_address("rollup()")
    if rollup is not None and rollup.strip().lower() != inbox_rollup:
        raise DevnetError(
            f"{ROLLUP} {rollup.strip()} is not the rollup of {SEQUENCER_INBOX} {inbox} (its rollup() is "
            f"{inbox_rollup}); fix the address or drop {ROLLUP}"
        )
    return L1Endpoint(
        rpc_url=rpc_url,
        chain_id=chain_id,
        sequencer_inbox=inbox,
        bridge=bridge,
        rollup=inbox_rollup,
        deployed_at_block=0,
        owned=False,
    )
