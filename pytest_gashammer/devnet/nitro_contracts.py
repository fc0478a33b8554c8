"""The pinned npm package ``@arbitrum/nitro-contracts``, installed into the user cache like anvil.

Its compiled artifacts are what :func:`pytest_gashammer.l1.contracts.deploy_l1` deploys on a devnet's
L1. The install lives here, with the other managed npm tools (:mod:`~pytest_gashammer.devnet.npm`),
rather than in ``l1``: the ``l1`` layer sits below ``devnet`` and only reads an installed directory.
``npm install --ignore-scripts`` runs once per version into ``<cache>/nitro-contracts-<version>``
under a file lock (about 17 MB, a few seconds).
"""

from __future__ import annotations

import os
from pathlib import Path

from pytest_gashammer.devnet.npm import cache_dir, install_into_cache
from pytest_gashammer.l1.contracts import (
    NITRO_CONTRACTS_NPM,
    NITRO_CONTRACTS_VERSION,
    NitroContractsError,
    artifacts_present,
)

#: Where an already installed package may be named instead (its directory, holding package.json).
ENV_VAR = "GASHAMMER_NITRO_CONTRACTS"


def _how_to_get(version: str) -> str:
    return (
        f"install Node.js with npm (the plugin then installs {NITRO_CONTRACTS_NPM}@{version} into "
        f"{cache_dir()}), or set {ENV_VAR} to an installed copy"
    )


def managed_package(version: str = NITRO_CONTRACTS_VERSION) -> Path:
    """Where the managed copy lives (the directory holding its ``package.json``)."""
    return cache_dir() / f"nitro-contracts-{version}" / "node_modules" / NITRO_CONTRACTS_NPM


def find_nitro_contracts(*, install: bool = True, version: str = NITRO_CONTRACTS_VERSION) -> Path:
    """The installed package directory: ``$GASHAMMER_NITRO_CONTRACTS``, else the managed copy (installed
    when missing)."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        path = Path(explicit).expanduser()
        if not artifacts_present(path):
            raise NitroContractsError(
                f"{ENV_VAR}={explicit!r} does not hold the {NITRO_CONTRACTS_NPM} artifacts"
            )
        return path
    package = managed_package(version)
    if artifacts_present(package):
        return package
    if not install:
        raise NitroContractsError(f"{NITRO_CONTRACTS_NPM}@{version} is not installed; {_how_to_get(version)}")
    relative = package.relative_to(cache_dir() / f"nitro-contracts-{version}")
    target = install_into_cache(
        f"nitro-contracts-{version}",
        [f"{NITRO_CONTRACTS_NPM}@{version}"],
        installed=lambda directory: artifacts_present(directory / relative),
        how_to_get=_how_to_get(version),
        error=NitroContractsError,
    )
    return target / relative
