"""Choosing and opening the devnet backend from the session's options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pytest_gashammer.devnet.base import Devnet
from pytest_gashammer.errors import DevnetError


@dataclass(frozen=True)
class DevnetOptions:
    rpc_url: str | None = None
    ws_url: str | None = None
    feed_url: str | None = None
    funder_key: str | None = None
    expected_chain_id: int | None = None
    allowed_chain_ids: frozenset[int] = field(default_factory=frozenset)
    anvil: str | None = None
    workdir: Path | None = None


def open_devnet(options: DevnetOptions) -> Devnet:
    """An external endpoint when ``rpc_url`` is set, else a started embedded devnet."""
    if options.rpc_url:
        if not options.funder_key:
            raise DevnetError(
                "--gashammer-rpc-url needs a funded account: pass --gashammer-funder-key KEY or set GASHAMMER_FUNDER_KEY"
            )
        from pytest_gashammer.devnet.external import ExternalDevnet

        return ExternalDevnet(
            options.rpc_url,
            options.funder_key,
            ws_url=options.ws_url,
            feed_url=options.feed_url,
            expected_chain_id=options.expected_chain_id,
            allowed_chain_ids=set(options.allowed_chain_ids),
        )
    if options.feed_url:
        raise DevnetError(
            "--gashammer-feed-url is for an external node's feed; the embedded devnet runs its own. "
            "Pass --gashammer-rpc-url too, or drop the option"
        )
    from pytest_gashammer.devnet.embedded import EmbeddedDevnet

    devnet = EmbeddedDevnet(anvil_path=options.anvil, workdir=options.workdir)
    if options.expected_chain_id is not None and options.expected_chain_id != devnet.chain_id:
        raise DevnetError(
            f"--gashammer-chain-id {options.expected_chain_id} does not match the embedded devnet's "
            f"{devnet.chain_id}; drop the option or point --gashammer-rpc-url at that chain"
        )
    return devnet.start()
