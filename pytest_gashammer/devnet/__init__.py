"""Devnets: one interface (:class:`Devnet`), several backends."""

from pytest_gashammer.devnet.base import (
    MAINNET_CHAIN_IDS,
    NITRO_DEV_ADDRESS,
    NITRO_DEV_CHAIN_ID,
    NITRO_DEV_KEY,
    Devnet,
    Funder,
)

__all__ = [
    "MAINNET_CHAIN_IDS",
    "NITRO_DEV_ADDRESS",
    "NITRO_DEV_CHAIN_ID",
    "NITRO_DEV_KEY",
    "Devnet",
    "Funder",
]
