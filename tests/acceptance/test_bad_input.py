"""Bad input gets one clear line naming the problem and the fix: no traceback, no stray process."""

from __future__ import annotations

import pytest

from pytest_gashammer.devnet.base import free_port
from pytest_gashammer.devnet.embedded import EmbeddedDevnet

pytestmark = pytest.mark.usefixtures("no_new_anvil")


def assert_clean_error(output: str) -> None:
    assert "Traceback" not in output
    assert "pytest_gashammer/" not in output, "the error should not point into the plugin's code"
    assert "During handling of the above exception" not in output, "the error is printed twice, chained"


def test_invalid_marker_arguments_name_the_argument(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_markers="""
        import pytest

        @pytest.mark.gashammer(gas_per_sec=0)
        def test_zero_rate(hammer):
            hammer.run()

        @pytest.mark.gashammer(gas_per_sec="2M", workload={"nosuch": 1.0})
        def test_unknown_template(hammer):
            hammer.run()

        @pytest.mark.gashammer(gas_per_sec="2M", duration="ten seconds")
        def test_bad_duration(hammer):
            hammer.run()

        @pytest.mark.gashammer(gas_per_sec="2M", dration="10s")
        def test_typo(hammer):
            hammer.run()

        @pytest.mark.gashammer("2M")
        def test_positional(hammer):
            hammer.run()

        @pytest.mark.gashammer(gas_per_sec="-3M")
        def test_negative(hammer):
            hammer.run()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rE")
    result.assert_outcomes(errors=6)
    result.stdout.fnmatch_lines_random(
        [
            "*test_zero_rate*gas_per_sec=0 must be a positive gas rate, e.g. gas_per_sec=2_000_000*",
            "*test_unknown_template*unknown template 'nosuch' in workload=...; use one of calldata, deploy, erc20, revert, storage, transfer or an import path*",
            "*test_bad_duration*duration='ten seconds' is not a duration; use seconds (30) or a string like '30s'*",
            "*test_typo*unknown argument 'dration' (did you mean 'duration'?); accepted: gas_per_sec, duration*",
            "*test_positional*takes keyword arguments only*",
            "*test_negative*gas_per_sec='-3M' is not a gas rate*",
        ]
    )
    assert_clean_error(result.stdout.str())
    # Validation happens before any devnet is started.
    assert "anvil" not in result.stdout.str()


def test_invalid_override_in_hammer_run_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_override="""
        import pytest

        @pytest.mark.gashammer(gas_per_sec="1M", duration="1s")
        def test_override(hammer):
            hammer.run(arrival="bursty")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*hammer.run(): arrival='bursty' is not supported; use one of 'constant', 'poisson'*"]
    )
    assert_clean_error(result.stdout.str())


def test_invalid_option_value(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gashammer-duration-scale", "-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gashammer-duration-scale: '-1' must be greater than zero*"])


SCENARIO = """
import pytest

@pytest.mark.gashammer(gas_per_sec="500k", duration="1s", warmup=0)
def test_external(hammer):
    result = hammer.run()
    assert result.included == result.sent > 0
"""


FEED_SCENARIO = """

def test_external_feed(hammer):
    result = hammer.run(gas_per_sec="500k", duration="1s", warmup=0)
    assert result.latency.feed.count == result.latency.inclusion.count > 0
"""


def test_unreachable_rpc_url(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_external=SCENARIO)
    url = f"http://127.0.0.1:{free_port()}"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--gashammer-rpc-url", url, "--gashammer-funder-key", "0x" + "11" * 32
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*--gashammer-rpc-url {url} is unreachable*check the URL and that the node runs*"]
    )
    assert_clean_error(result.stdout.str())


def test_rpc_url_without_funder_key(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_external=SCENARIO)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--gashammer-rpc-url", "http://127.0.0.1:1"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*--gashammer-rpc-url needs a funded account: pass --gashammer-funder-key KEY*"]
    )


@pytest.fixture(scope="module")
def mainnet_shaped_node():
    with EmbeddedDevnet(chain_id=1).start() as node:
        yield node


@pytest.fixture(scope="module")
def external_node():
    with EmbeddedDevnet().start() as node:
        yield node


def test_public_mainnet_chain_id_is_refused(
    pytester: pytest.Pytester, mainnet_shaped_node: EmbeddedDevnet
) -> None:
    pytester.makepyfile(test_external=SCENARIO)
    args = [
        "-p",
        "no:cacheprovider",
        "--gashammer-rpc-url",
        mainnet_shaped_node.rpc_url,
        "--gashammer-funder-key",
        mainnet_shaped_node.funder.key,
    ]
    refused = pytester.runpytest_subprocess(*args)
    refused.assert_outcomes(errors=1)
    refused.stdout.fnmatch_lines(
        [
            "*refusing to load chain id 1 (Ethereum mainnet); pass --gashammer-allow-chain-id 1 if you really mean it*"
        ]
    )
    assert_clean_error(refused.stdout.str())
    allowed = pytester.runpytest_subprocess(*args, "--gashammer-allow-chain-id", "1")
    allowed.assert_outcomes(passed=1)


def test_external_endpoint_runs_the_same_test(
    pytester: pytest.Pytester, external_node: EmbeddedDevnet
) -> None:
    pytester.makepyfile(test_external=SCENARIO + FEED_SCENARIO)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--gashammer-rpc-url",
        external_node.rpc_url,
        "--gashammer-ws-url",
        external_node.ws_url,
        "--gashammer-feed-url",
        external_node.feed_url,
        "--gashammer-funder-key",
        external_node.funder.key,
        "--gashammer-chain-id",
        "412346",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*chain=412346 (external, anvil/v1.7.1*"])


def test_wrong_chain_id(pytester: pytest.Pytester, external_node: EmbeddedDevnet) -> None:
    pytester.makepyfile(test_external=SCENARIO)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--gashammer-rpc-url",
        external_node.rpc_url,
        "--gashammer-funder-key",
        external_node.funder.key,
        "--gashammer-chain-id",
        "42161",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*the endpoint reports chain id 412346 but --gashammer-chain-id is 42161; point at the right node*"]
    )
    assert_clean_error(result.stdout.str())


def test_funder_without_funds(pytester: pytest.Pytester, external_node: EmbeddedDevnet) -> None:
    pytester.makepyfile(test_external=SCENARIO)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--gashammer-rpc-url",
        external_node.rpc_url,
        "--gashammer-funder-key",
        "0x" + "42" * 32,
        "--gashammer-seed",
        "4242",  # senders no earlier test has funded on this node
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*funder 0x* holds 0.000000 ETH but the run needs * ETH to fund its senders; fund that account or lower*"
        ]
    )
    assert_clean_error(result.stdout.str())


def test_feed_url_must_be_a_websocket_url(pytester: pytest.Pytester, external_node: EmbeddedDevnet) -> None:
    pytester.makepyfile(test_external=SCENARIO)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--gashammer-rpc-url",
        external_node.rpc_url,
        "--gashammer-funder-key",
        external_node.funder.key,
        "--gashammer-feed-url",
        "http://127.0.0.1:9642",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*--gashammer-feed-url 'http://127.0.0.1:9642' must be a ws:// or wss:// URL*"]
    )
    assert_clean_error(result.stdout.str())


def test_anvil_that_cannot_be_found(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_external=SCENARIO)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--gashammer-anvil", "/nonexistent/anvil"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*anvil at '/nonexistent/anvil' (--gashammer-anvil / GASHAMMER_ANVIL) is not an executable file*"]
    )
    assert_clean_error(result.stdout.str())


def test_a_container_backend_without_a_docker_daemon_is_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="def test_uses_the_devnet(devnet):\n    pass\n")
    socket_path = pytester.path / "no-docker.sock"
    pytester._monkeypatch.setenv("DOCKER_HOST", f"unix://{socket_path}")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gashammer-devnet", "nitro", "-rE")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*no Docker daemon answers at unix://{socket_path} (*); start one as root with `dockerd &`*"]
    )
    assert_clean_error(result.stdout.str())


def test_node_faults_on_a_container_devnet_fail_at_collection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        import pytest

        @pytest.mark.gashammer(gas_per_sec="2M", faults=[{"kind": "node.pause", "at": "1s", "duration": "1s"}])
        def test_paused(hammer):
            hammer.run()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gashammer-devnet", "nitro", "-rE")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*faults[[]0[]] node.pause: the nitro devnet cannot pause its node (it offers: none)*"]
    )
    assert_clean_error(result.stdout.str())
