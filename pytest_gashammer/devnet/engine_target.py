"""Any execution client by URL: the user's node, the plugin's consensus driver building its blocks.

``--gashammer-engine-url URL --gashammer-jwt-secret FILE --gashammer-rpc-url URL`` (and
``--gashammer-funder-key``) name a post-merge execution client the plugin does not start: geth,
reth, Nethermind, Besu, Erigon, EthereumJS, ... on a chain with nothing else driving it. The
plugin loads it through its JSON-RPC like any external endpoint, and builds its blocks over its
Engine API with the same :class:`~pytest_gashammer.devnet.consensus.ConsensusDriver` the
EthereumJS devnet uses (one block a second; :attr:`EngineTargetDevnet.consensus`).

The Engine API version is the highest the node serves (``engine_exchangeCapabilities``) that can
build on its chain's fork: the head block's header says which fork that is (``requestsHash``:
Prague, V4; ``parentBeaconBlockRoot``: Cancun, V3; ``withdrawalsRoot``: Shanghai, V2; else Paris,
V1). A wrong JWT secret is found at start: the node answers HTTP 401.
"""

from __future__ import annotations

import string
from pathlib import Path

from pytest_gashammer.chain.engine import (
    FORK_OF_VERSION,
    JWT_SECRET_BYTES,
    EngineCallError,
    EngineClient,
    EngineError,
    fork_version,
    served_versions,
)
from pytest_gashammer.chain.rpc import RpcError, TransportError, call
from pytest_gashammer.devnet.consensus import DEFAULT_INTERVAL, ConsensusDriver
from pytest_gashammer.devnet.external import ExternalDevnet
from pytest_gashammer.errors import DevnetError
from pytest_gashammer.options import ENGINE_URL, JWT_SECRET, RPC_URL

#: A JWT secret file bigger than this is not one (a secret is 64 hex digits and a newline).
MAX_SECRET_FILE = 1024


def read_jwt_secret(path: str | Path) -> bytes:
    """The 32-byte secret in ``path``: hex, with or without ``0x``, surrounding whitespace ignored
    (the format geth, reth, Nethermind, Besu and EthereumJS read). Anything else is a one-line
    :class:`~pytest_gashammer.errors.DevnetError` naming ``--gashammer-jwt-secret``."""
    where = f"{JWT_SECRET} {path}"
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SECRET_FILE + 1)
    except OSError as exc:
        raise DevnetError(
            f"{where} cannot be read ({exc.strerror or exc}); pass the node's JWT secret file"
        ) from None
    if len(raw) > MAX_SECRET_FILE:
        raise DevnetError(f"{where} is not a JWT secret file: it holds more than {MAX_SECRET_FILE} bytes")
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise DevnetError(
            f"{where} is not hex text; a JWT secret file holds {JWT_SECRET_BYTES} bytes as "
            f"{2 * JWT_SECRET_BYTES} hex digits (0x optional)"
        ) from None
    digits = text[2:] if text[:2].lower() == "0x" else text
    if not digits or any(char not in string.hexdigits for char in digits):
        raise DevnetError(
            f"{where} is not hex; a JWT secret file holds {JWT_SECRET_BYTES} bytes as "
            f"{2 * JWT_SECRET_BYTES} hex digits (0x optional)"
        )
    if len(digits) != 2 * JWT_SECRET_BYTES:
        raise DevnetError(
            f"{where} holds {len(digits)} hex digits; a JWT secret is {JWT_SECRET_BYTES} bytes, "
            f"{2 * JWT_SECRET_BYTES} hex digits (0x optional)"
        )
    return bytes.fromhex(digits)


class EngineTargetDevnet(ExternalDevnet):
    """The node of ``rpc_url`` and ``engine_url``, its blocks built by the plugin's consensus driver.

    ``version``: an Engine API version to use instead of the negotiated one (checked against what
    the node serves and its chain's fork).
    """

    kind = "engine"

    def __init__(
        self,
        rpc_url: str,
        engine_url: str,
        jwt_secret: bytes,
        funder_key: str,
        *,
        ws_url: str | None = None,
        expected_chain_id: int | None = None,
        allowed_chain_ids: set[int] | None = None,
        version: int | None = None,
        block_interval: float = DEFAULT_INTERVAL,
        engine_timeout: float = 120.0,
    ) -> None:
        super().__init__(
            rpc_url,
            funder_key,
            ws_url=ws_url,
            expected_chain_id=expected_chain_id,
            allowed_chain_ids=allowed_chain_ids,
        )
        if len(jwt_secret) != JWT_SECRET_BYTES:
            raise DevnetError(
                f"{JWT_SECRET}: a JWT secret is {JWT_SECRET_BYTES} bytes, got {len(jwt_secret)}"
            )
        self.engine_url = engine_url
        self.block_interval = block_interval
        self._jwt_secret = jwt_secret
        self._requested_version = version
        self._engine_timeout = engine_timeout
        self._driver: ConsensusDriver | None = None

    @property
    def consensus(self) -> ConsensusDriver:
        """The driver that builds this node's blocks: ``pause()``, ``resume()``, ``configure()``, the records."""
        if self._driver is None:
            raise DevnetError("the Engine API target is not started; call start() first")
        return self._driver

    @property
    def engine_version(self) -> int:
        """The Engine API version the driver speaks."""
        return self.consensus.engine.version

    def engine(self, *, timeout: float = 120.0) -> EngineClient:
        """A new Engine API client for this node, at the driver's version."""
        return EngineClient(self.engine_url, self._jwt_secret, timeout=timeout, version=self.engine_version)

    def start(self) -> EngineTargetDevnet:
        """Check the Engine API (JWT, versions, fork) and start building blocks."""
        if self._driver is not None:
            return self
        probe = EngineClient(self.engine_url, self._jwt_secret, timeout=10)
        try:
            capabilities = probe.exchange_capabilities(
                [
                    f"engine_{name}V{number}"
                    for number in (1, 2, 3, 4)
                    for name in ("getPayload", "newPayload")
                ]
            )
        except EngineCallError as exc:
            if exc.unauthorized:
                raise DevnetError(
                    f"{ENGINE_URL} {self.engine_url} refused the JWT (HTTP 401): {JWT_SECRET} is not the "
                    "secret the node was started with (or this machine's clock is more than a minute off)"
                ) from None
            raise DevnetError(
                f"{ENGINE_URL} {self.engine_url} did not answer engine_exchangeCapabilities ({exc.cause}); "
                "point it at the node's authenticated Engine API port (often 8551)"
            ) from None
        served = served_versions(capabilities)
        if not served:
            raise DevnetError(
                f"{ENGINE_URL} {self.engine_url} serves no complete Engine API version (forkchoiceUpdated, "
                "getPayload and newPayload of one version, V1-V4)"
            )
        try:
            head: object = call(self.rpc_url, "eth_getBlockByNumber", ["latest", False], timeout=30)
        except (RpcError, TransportError) as exc:
            raise DevnetError(f"{RPC_URL} {self.rpc_url}: the head block could not be read ({exc})") from None
        if not isinstance(head, dict):
            raise DevnetError(
                f"{RPC_URL} {self.rpc_url}: eth_getBlockByNumber('latest') answered {str(head)[:80]}"
            )
        fork = fork_version(head)
        version = self._requested_version if self._requested_version is not None else fork
        if version not in served:
            offered = ", ".join(f"V{number}" for number in served)
            raise DevnetError(
                f"{ENGINE_URL} {self.engine_url} does not serve Engine API V{version}, which builds its chain's "
                f"{FORK_OF_VERSION[fork]} blocks; it serves {offered}"
            )
        if version != fork:
            raise DevnetError(
                f"Engine API V{version} builds {FORK_OF_VERSION[version]} blocks, and the head of {RPC_URL} "
                f"{self.rpc_url} is a {FORK_OF_VERSION[fork]} block: use version {fork}"
            )
        engine = EngineClient(
            self.engine_url, self._jwt_secret, timeout=self._engine_timeout, version=version
        )
        driver = ConsensusDriver(engine, self.rpc_url, interval=self.block_interval)
        try:
            self._driver = driver.start()
        except (RpcError, TransportError, EngineError) as exc:
            raise DevnetError(f"{RPC_URL} {self.rpc_url}: the head could not be read ({exc})") from None
        return self

    def incidents(self) -> list[str]:
        return list(self._driver.incidents) if self._driver is not None else []

    def close(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.stop(timeout=10.0)

    def __repr__(self) -> str:
        state = f"V{self._driver.engine.version}" if self._driver is not None else "not started"
        return f"<EngineTargetDevnet rpc_url={self.rpc_url!r} engine_url={self.engine_url!r} {state}>"
