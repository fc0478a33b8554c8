"""An external endpoint: a real ``nitro --dev``, a testnode, or any JSON-RPC node the user points at."""

from __future__ import annotations

from pytest_gashammer.chain.rpc import RpcError, TransportError, call
from pytest_gashammer.devnet.base import MAINNET_CHAIN_IDS, Devnet, Funder
from pytest_gashammer.errors import DevnetError


def funder_from_key(key: str) -> Funder:
    from eth_account import Account

    text = key.strip()
    if text[:2].lower() == "0x":
        text = text[2:]
    text = "0x" + text
    try:
        account = Account.from_key(text)
    except (ValueError, TypeError):
        raise DevnetError(
            "--gashammer-funder-key is not a valid private key; pass 32 bytes as 64 hex digits (0x-prefixed)"
        ) from None
    return Funder(account.address, "0x" + bytes(account.key).hex())


def check_chain_id(chain_id: int, *, expected: int | None, allowed: set[int]) -> None:
    if expected is not None and chain_id != expected:
        raise DevnetError(
            f"the endpoint reports chain id {chain_id} but --gashammer-chain-id is {expected}; point at the right node"
        )
    if chain_id in MAINNET_CHAIN_IDS and chain_id not in allowed:
        raise DevnetError(
            f"refusing to load chain id {chain_id} ({MAINNET_CHAIN_IDS[chain_id]} mainnet); "
            f"pass --gashammer-allow-chain-id {chain_id} if you really mean it"
        )


class ExternalDevnet(Devnet):
    kind = "external"

    def __init__(
        self,
        rpc_url: str,
        funder_key: str,
        *,
        ws_url: str | None = None,
        feed_url: str | None = None,
        expected_chain_id: int | None = None,
        allowed_chain_ids: set[int] | None = None,
    ) -> None:
        super().__init__()
        self._rpc_url = rpc_url
        self._ws_url = ws_url
        if feed_url is not None and not feed_url.startswith(("ws://", "wss://")):
            raise DevnetError(
                f"--gashammer-feed-url {feed_url!r} must be a ws:// or wss:// URL (a Nitro node's port 9642)"
            )
        self._feed_url = feed_url
        self._funder = funder_from_key(funder_key)
        try:
            self._chain_id = int(call(rpc_url, "eth_chainId", timeout=10), 16)
        except TransportError as exc:
            raise DevnetError(
                f"--gashammer-rpc-url {rpc_url} is unreachable ({exc}); check the URL and that the node runs"
            ) from None
        except (RpcError, ValueError, TypeError) as exc:
            raise DevnetError(
                f"--gashammer-rpc-url {rpc_url} answered eth_chainId badly ({exc}); is it an EVM node?"
            ) from None
        check_chain_id(self._chain_id, expected=expected_chain_id, allowed=allowed_chain_ids or set())

    @property
    def rpc_url(self) -> str:
        return self._rpc_url

    @property
    def ws_url(self) -> str | None:
        return self._ws_url

    @property
    def feed_url(self) -> str | None:
        return self._feed_url

    @property
    def chain_id(self) -> int:
        return self._chain_id

    @property
    def funder(self) -> Funder:
        return self._funder

    def __repr__(self) -> str:
        return f"<ExternalDevnet rpc_url={self._rpc_url!r} chain_id={self._chain_id}>"
