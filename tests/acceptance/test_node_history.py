"""A load test on the embedded devnet with its history pruned: anvil forgets, every verdict still holds."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("no_new_anvil")


def test_a_run_on_a_pruned_devnet_passes_every_verdict(pytester: pytest.Pytester) -> None:
    # Transfers only with every receipt: the balance check (the senders' state before and after)
    # runs too, and the feed relay and receipts read the pruned node as the run goes.
    pytester.makepyfile(
        test_pruned="""
        from pathlib import Path

        import pytest
        from web3.exceptions import Web3RPCError

        @pytest.mark.gashammer(gas_per_sec="4M", duration="4s", warmup="1s", receipts="all", seed=5)
        def test_transfers(hammer, devnet):
            argv = Path(f"/proc/{devnet.pid}/cmdline").read_bytes().split(b"\\0")
            assert argv[argv.index(b"--prune-history") + 1] == b"--transaction-block-keeper"
            assert argv[argv.index(b"--transaction-block-keeper") + 1] == b"240"

            result = hammer.run()
            statuses = {verdict.name: verdict.status for verdict in result.verdicts}
            # The devnet's L1 is judged too; a short run may end before an assertion is confirmed.
            assert statuses.pop("confirmations") in ("passed", "inconclusive"), statuses
            assert set(statuses.values()) == {"passed"}, statuses
            assert "balance_conservation" in statuses and "feed_exactly_once" in statuses
            assert result.included == result.sent > 200 and result.lost == 0
            assert result.receipts_checked == result.included
            (note,) = [note for note in result.notes if note.startswith("devnet: anvil history pruned")]
            assert "(--gashammer-node-history pruned)" in note

            # The history really is pruned: no past state (the balance check fell back to the head), and
            # the latest is there.
            with pytest.raises(Web3RPCError):
                devnet.web3.eth.get_balance(devnet.funder.address, block_identifier=1)
            assert devnet.web3.eth.get_balance(devnet.funder.address) > 0
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gashammer-node-history", "pruned")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*devnet: anvil history pruned: keeps the transactions and receipts of the last 240 blocks*"]
    )


@pytest.mark.parametrize("distribution", [(), ("-n", "2")], ids=["local", "xdist"])
def test_a_long_planned_run_prunes_the_devnet_by_itself(
    pytester: pytest.Pytester, distribution: tuple[str, ...]
) -> None:
    # The marker plans 10 minutes (over 180 s), so the session's devnet is pruned before any run;
    # the run itself is shortened by an override, which collection does not see. Under xdist the
    # controller starts the devnet and learns the length from the worker's request.
    pytester.makepyfile(
        test_long="""
        import pytest

        @pytest.mark.gashammer(gas_per_sec="1M", duration="10m", warmup=0, seed=9)
        def test_soak(hammer):
            result = hammer.run(duration="2s")
            assert result.lost == 0
            (note,) = [note for note in result.notes if note.startswith("devnet: anvil history pruned")]
            assert note.endswith("(--gashammer-node-history auto: the longest planned run sends for 600 s, over 180 s)")

        def test_short_session_neighbour():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *distribution, timeout=300)
    result.assert_outcomes(passed=2)
