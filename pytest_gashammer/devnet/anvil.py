"""Finding anvil, or installing the pinned npm package ``@foundry-rs/anvil`` into a user cache.

Lookup order: an explicit path (``--gashammer-anvil`` / ``GASHAMMER_ANVIL``), then ``anvil`` on
PATH, then a project-managed install. The managed install runs ``npm install`` once per version
into ``<cache>/anvil-<version>`` under a file lock, so xdist workers that race to it wait for one
installer instead of corrupting each other's tree. The platform package ships the native binary;
the plugin runs that binary directly rather than the Node.js wrapper, so there is no middle
process that could outlive a crash.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pytest_gashammer.chain.rpc import TransportError, call
from pytest_gashammer.devnet.base import free_port
from pytest_gashammer.devnet.npm import cache_dir, install_into_cache
from pytest_gashammer.devnet.process import ManagedProcess
from pytest_gashammer.errors import DevnetError
from pytest_gashammer.options import NODE_HISTORY, NODE_HISTORY_MODES, PRUNE_AFTER_SECONDS

ANVIL_VERSION = "1.7.1"
NPM_PACKAGE = "@foundry-rs/anvil"
#: How often an anvil is started again on another free port when one was taken under it.
PORT_ATTEMPTS = 5

_HOW_TO_GET = (
    f"install Foundry's anvil (https://getfoundry.sh) or Node.js with npm (the plugin then installs "
    f"{NPM_PACKAGE}@{ANVIL_VERSION} itself), or pass --gashammer-anvil PATH"
)


def platform_package() -> tuple[str, str]:
    """(npm platform package, binary name) for this machine."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    system = {"linux": "linux", "darwin": "darwin", "win32": "win32"}.get(sys.platform)
    if arch is None or system is None or (system == "win32" and arch != "amd64"):
        raise DevnetError(f"no prebuilt anvil for {sys.platform}/{machine}; {_HOW_TO_GET}")
    binary = "anvil.exe" if system == "win32" else "anvil"
    return f"{NPM_PACKAGE}-{system}-{arch}", binary


def managed_binary(version: str = ANVIL_VERSION) -> Path:
    package, binary = platform_package()
    return cache_dir() / f"anvil-{version}" / "node_modules" / package / "bin" / binary


def find_anvil(explicit: str | None = None, *, install: bool = True) -> Path:
    """The anvil binary to run, installing the pinned version when nothing else is available."""
    explicit = explicit or os.environ.get("GASHAMMER_ANVIL")
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise DevnetError(
                f"anvil at {explicit!r} (--gashammer-anvil / GASHAMMER_ANVIL) is not an executable file"
            )
        return path
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    managed = managed_binary()
    if managed.is_file():
        return managed
    if not install:
        raise DevnetError(f"anvil not found; {_HOW_TO_GET}")
    return install_managed()


def install_managed(version: str = ANVIL_VERSION) -> Path:
    """``npm install`` the pinned anvil into the cache, once, under a file lock."""
    package, binary = platform_package()
    relative = Path("node_modules") / package / "bin" / binary

    def installed(directory: Path) -> bool:
        return (directory / relative).is_file()

    target = install_into_cache(
        f"anvil-{version}",
        [f"{NPM_PACKAGE}@{version}", f"{package}@{version}"],
        installed=installed,
        how_to_get=_HOW_TO_GET,
    )
    (target / relative).chmod(0o755)
    return target / relative


def anvil_version(binary: Path) -> str:
    try:
        completed = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DevnetError(f"cannot run anvil at {binary} ({exc}); {_HOW_TO_GET}") from None
    first = completed.stdout.strip().splitlines()
    return first[0] if first else "anvil (unknown version)"


# ----------------------------------------------------------------------------------------------
# starting one


def port_taken(log: str) -> bool:
    """Whether anvil's log says its port was taken (by another process, after our probe)."""
    lowered = log.lower()
    return "address already in use" in lowered or "addrinuse" in lowered


def wait_for_anvil(
    process: ManagedProcess, port: int, chain_id: int, timeout: float, name: str = "anvil"
) -> None:
    """Returns once the anvil ``process`` answers ``eth_chainId`` with ``chain_id`` on ``port``."""
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exit_code = process.poll()
        if exit_code is not None:
            raise DevnetError(
                f"{name} exited with code {exit_code} at start: {process.log_tail(300).strip()}"
            )
        try:
            answered = int(call(url, "eth_chainId", timeout=2), 16)
        except TransportError:
            time.sleep(0.05)
            continue
        if answered != chain_id:
            raise DevnetError(f"{name} reports chain id {answered}, expected {chain_id}")
        return
    raise DevnetError(f"{name} did not answer on {url} within {timeout:.0f} s")


def launch_anvil(
    argv: Callable[[int], list[str]],
    *,
    chain_id: int,
    log_dir: Path,
    timeout: float,
    name: str = "anvil",
) -> tuple[ManagedProcess, int]:
    """``argv(port)`` started on a free loopback port and answering; the process and its port.

    Another process may take the port between the probe and anvil's bind: then anvil is started
    again on another port, at most :data:`PORT_ATTEMPTS` times. Any other failure stops it and raises.
    """
    last_log = ""
    for _attempt in range(PORT_ATTEMPTS):
        port = free_port()
        process = ManagedProcess(argv(port), log_path=log_dir / f"{name.replace(' ', '-')}-{port}.log")
        try:
            wait_for_anvil(process, port, chain_id, timeout, name)
        except DevnetError:
            process.stop()
            last_log = process.log_tail(600)
            if port_taken(last_log):
                continue  # another process took the port between our probe and anvil's bind
            raise
        except BaseException:
            process.stop()
            raise
        return process, port
    raise DevnetError(
        f"{name} could not bind a free loopback port after {PORT_ATTEMPTS} tries: {last_log[-200:]}"
    )


# ----------------------------------------------------------------------------------------------
# history: how much of the chain anvil keeps in memory

#: Pruned, anvil keeps the transactions (bodies, receipts, traces) of this many seconds of blocks
#: (``--transaction-block-keeper``) and forgets older ones: ``eth_getTransactionReceipt``,
#: ``eth_getTransactionByHash`` and the block's transaction list answer nothing for them. What the
#: plugin reads that way, it reads while a block is young: the block follower and the feed relay
#: read each block as it comes (a lag of a minute is a failed run on its own), the receipt loop
#: fetches a sampled receipt within ~2 s of its block and the drain fetches the last ones within
#: ``max(30 s, inclusion_timeout)`` of the end of sending, and the lost-transaction probe asks about
#: transactions no block holds (found in the pool, not in history). 60 s is twice the drain's
#: default window; at 50 Mgas/s it holds ~240 blocks of ~550 transactions each.
KEEP_TRANSACTIONS_SECONDS = 60.0

#: ... and no past state at all (``--prune-history`` without a number): ``eth_getBalance`` and the
#: like answer at the head block only. Not a few states: anvil 1.7.1 raises its in-memory state
#: limit to 1,500 for any block time up to 2 s, whatever ``--prune-history N`` says, and with
#: pruning on never lowers it again, so ``N`` would keep a full copy of the accounts for each of up
#: to 1,500 blocks. No past state also spares anvil that copy on every block. The only reads at a
#: block number the plugin makes are the balance check's (edge/evidence.py): refused a block that
#: is no longer the head, it reads at the head, which shows the same balances (see ``BalanceCheck``).


@dataclasses.dataclass(frozen=True)
class AnvilHistory:
    """Whether the embedded anvil prunes its history, and why (for the log and the runs' notes)."""

    pruned: bool
    reason: str

    def argv(self, block_time: float) -> list[str]:
        """anvil's flags for this choice at ``block_time`` seconds per block (none when full)."""
        if not self.pruned:
            return []
        return ["--prune-history", "--transaction-block-keeper", str(self.kept_blocks(block_time))]

    @staticmethod
    def kept_blocks(block_time: float) -> int:
        """How many blocks' transactions are kept when pruned."""
        return math.ceil(KEEP_TRANSACTIONS_SECONDS / block_time)

    def describe(self, block_time: float) -> str:
        if not self.pruned:
            return f"anvil keeps its full history ({self.reason})"
        return (
            f"anvil history pruned: keeps the transactions and receipts of the last "
            f"{self.kept_blocks(block_time)} blocks ({KEEP_TRANSACTIONS_SECONDS:g} s) and no past state "
            f"({self.reason})"
        )


def choose_history(mode: str, longest_run: float | None) -> AnvilHistory:
    """The history the embedded anvil keeps for ``--gashammer-node-history mode``.

    ``longest_run`` is the longest sending time (seconds) among the session's planned runs, None
    when nothing planned one (a session that only uses the ``devnet`` fixture).
    """
    if mode not in NODE_HISTORY_MODES:
        raise DevnetError(
            f"{NODE_HISTORY} {mode!r} is not a history mode; use {', '.join(NODE_HISTORY_MODES)}"
        )
    if mode != "auto":
        return AnvilHistory(pruned=mode == "pruned", reason=f"{NODE_HISTORY} {mode}")
    if longest_run is None:
        return AnvilHistory(pruned=False, reason=f"{NODE_HISTORY} auto: no run planned at collection")
    pruned = longest_run > PRUNE_AFTER_SECONDS
    return AnvilHistory(
        pruned=pruned,
        reason=(
            f"{NODE_HISTORY} auto: the longest planned run sends for {longest_run:g} s, "
            f"{'over' if pruned else 'at most'} {PRUNE_AFTER_SECONDS:g} s"
        ),
    )
