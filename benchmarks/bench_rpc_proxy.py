"""What the fault RPC proxy costs when no fault is armed: added latency and CPU per request at 5k tx/s.

Run with ``python benchmarks/bench_rpc_proxy.py [--node anvil|stub] [--rate 5000] [--seconds 10]
[--rounds 2]``. The node is either one embedded anvil devnet (no feed relay, no pool watch) or, with
``--node stub``, a stub JSON-RPC node in a child process that answers each ``eth_sendRawTransaction``
with the transaction's hash and does nothing else: anvil pinned to one core saturates below 5k tx/s,
and its queueing then hides what the proxy adds; the stub isolates the proxy. The node is pinned to
CPU 0 and this process (the generator, and the proxy's thread inside it, as in a test) to CPU 1, as
the project's measurements are. Then, in ``--rounds`` rounds of two phases (direct, proxy; then proxy, direct, so
that drift over the run falls on both alike), it sends ``rate × seconds`` signed native transfers with
``eth_sendRawTransaction``:

- open loop: each transaction has an intended send time from the rate; the generator wakes every
  4 ms and sends what is due as one JSON-RPC batch on a free connection (``--connections``, default 4,
  at most one request in flight each; while all are busy the next batch grows), as the edge's
  submitter does;
- to the node directly, or through :class:`~pytest_gashammer.fault.RpcProxy` with no fault (a fresh
  proxy per phase);
- transactions are signed before the phase starts (coincurve ``FastSigner``), by senders of their own
  that ``anvil_setBalance`` funded (on anvil), so no phase waits on another's nonces; on anvil each
  phase starts once the node's pool has drained.

Per phase: requests sent, transactions per request, answered hashes versus errors, the request
latency (post to whole answer, p50 / p99 / max), the send lag (sent − intended, p99), the process's
CPU seconds (all threads; anvil not counted), the node's CPU share, and for proxy phases the proxy
thread's CPU seconds (``time.thread_time`` read on its loop), per request and per transaction. The
summary gives the proxy's added latency (median of proxy phases − median of direct phases, per
statistic) and its CPU per request. The script reports and never gates: its exit code is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402

from benchmarks.pinning import GENERATOR_CPU, NODE_CPU, pin_self, pin_to  # noqa: E402
from pytest_gashammer.chain.keccak import keccak256  # noqa: E402
from pytest_gashammer.chain.rpc import call  # noqa: E402
from pytest_gashammer.chain.signer import FastSigner  # noqa: E402
from pytest_gashammer.devnet.embedded import EmbeddedDevnet  # noqa: E402
from pytest_gashammer.fault import RpcProxy  # noqa: E402

TICK = 0.004  # the edge's coalescing interval
TRANSFER_GAS = 21_000
STUB_CHAIN_ID = 412346
SENDER_BALANCE = hex(10**24)


# ---------------------------------------------------------------------------------------- pinning


def node_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------------- the stub node


def serve_stub() -> None:
    """Child process: a JSON-RPC node that answers ``eth_sendRawTransaction`` with the hash, at once."""
    from aiohttp import web

    async def handle(request: Any) -> Any:
        payload = json.loads(await request.read())
        answers = []
        for item in payload if isinstance(payload, list) else [payload]:
            if item.get("method") == "eth_sendRawTransaction":
                result = "0x" + keccak256(bytes.fromhex(item["params"][0][2:])).hex()
            else:
                result = hex(STUB_CHAIN_ID)
            answers.append({"jsonrpc": "2.0", "id": item.get("id"), "result": result})
        out = answers if isinstance(payload, list) else answers[0]
        return web.Response(text=json.dumps(out), content_type="application/json")

    async def main() -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("POST", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


class Node:
    """The node under the load: an embedded anvil devnet, or the stub in a child process."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.devnet: EmbeddedDevnet | None = None
        self.process: subprocess.Popen[str] | None = None
        self.rpc_url = ""
        self.pid = 0
        self.chain_id = STUB_CHAIN_ID

    def __enter__(self) -> Node:
        if self.kind == "anvil":
            self.devnet = EmbeddedDevnet(feed=False, pool_watch=False).start()
            assert self.devnet.pid is not None
            self.rpc_url, self.pid, self.chain_id = self.devnet.rpc_url, self.devnet.pid, self.devnet.chain_id
            return self
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-stub"], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline())
        self.rpc_url, self.pid = f"http://127.0.0.1:{port}", self.process.pid
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.devnet is not None:
            self.devnet.close()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# ------------------------------------------------------------------------------------- the load


def sign_phase(node: Node, label: str, count: int, senders: int) -> list[str]:
    """``count`` transfers by ``senders`` new funded senders, rendered as JSON-RPC request objects
    (without the id), interleaved so that each sender's nonces go out in order."""
    base_fee = int(call(node.rpc_url, "eth_gasPrice"), 16) if node.kind == "anvil" else 10**9
    template = {
        "type": 2,
        "chainId": node.chain_id,
        "to": "0x" + keccak256(b"gashammer/bench-rpc-proxy/recipient")[12:].hex(),
        "value": 1,
        "gas": TRANSFER_GAS,
        "maxFeePerGas": base_fee * 4 + 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    prepared = []
    for index in range(senders):
        key = keccak256(f"gashammer/bench-rpc-proxy/{label}/{index}".encode())
        signer = FastSigner(key, node.chain_id)
        if node.kind == "anvil":
            call(node.rpc_url, "anvil_setBalance", [signer.address, SENDER_BALANCE])
        prepared.append(signer.prepare(template))
    requests = []
    for position in range(count):
        signed = prepared[position % senders].sign(position // senders)
        requests.append(f'"jsonrpc":"2.0","method":"eth_sendRawTransaction","params":["{signed.raw_hex}"]')
    return requests


@dataclass
class Phase:
    target: str
    round: int
    transactions: int = 0
    requests: int = 0
    answered: int = 0
    errors: int = 0
    failed_requests: int = 0
    seconds: float = 0.0
    latency_ms: list[float] = field(default_factory=list, repr=False)
    lag_ms: list[float] = field(default_factory=list, repr=False)
    process_cpu: float = 0.0
    node_cpu_share: float = 0.0
    proxy_cpu: float | None = None
    first_error: str | None = None

    def pct(self, values: list[float], q: float) -> float:
        ordered = sorted(values)
        if not ordered:
            return math.nan
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    def figures(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("latency_ms", "lag_ms")}
        out.update(
            tx_per_request=self.transactions / self.requests if self.requests else math.nan,
            latency_p50_ms=self.pct(self.latency_ms, 0.50),
            latency_p99_ms=self.pct(self.latency_ms, 0.99),
            latency_max_ms=max(self.latency_ms, default=math.nan),
            lag_p99_ms=self.pct(self.lag_ms, 0.99),
            sent_tx_per_s=self.transactions / self.seconds if self.seconds else math.nan,
            process_cpu_us_per_request=self.process_cpu / self.requests * 1e6 if self.requests else math.nan,
        )
        if self.proxy_cpu is not None and self.requests:
            out["proxy_cpu_us_per_request"] = self.proxy_cpu / self.requests * 1e6
            out["proxy_cpu_us_per_tx"] = self.proxy_cpu / self.transactions * 1e6
            out["proxy_cpu_share"] = self.proxy_cpu / self.seconds
        return out


async def send_open_loop(url: str, requests: list[str], rate: float, connections: int, phase: Phase) -> None:
    """Send ``requests`` at ``rate`` per second, due ones batched per free connection every 4 ms."""
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=connections, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=30)
    in_flight: set[asyncio.Task[None]] = set()
    next_id = 1

    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers={"Content-Type": "application/json"}
    ) as session:

        async def post(body: bytes) -> None:
            started = loop.time()
            try:
                async with session.post(url, data=body) as response:
                    payload = await response.read()
                phase.latency_ms.append((loop.time() - started) * 1000)
                answers = json.loads(payload)
                for answer in answers:
                    if "result" in answer:
                        phase.answered += 1
                    else:
                        phase.errors += 1
                        phase.first_error = phase.first_error or str(answer.get("error"))[:200]
            except Exception as exc:  # counted, never raised: the script reports
                phase.failed_requests += 1
                phase.first_error = phase.first_error or f"{type(exc).__name__}: {exc}"

        async def warm() -> None:
            async with session.post(url, data=b'{"jsonrpc":"2.0","id":0,"method":"eth_chainId"}') as response:
                await response.read()

        # open the connections first, so that the first batches do not pay for the connects
        await asyncio.gather(*(warm() for _ in range(connections)))
        start = loop.time() + 0.05
        sent = 0
        total = len(requests)
        while sent < total:
            now = loop.time()
            due = min(total, int((now - start) * rate) + 1) if now >= start else 0
            if due > sent and len(in_flight) < connections:
                items = []
                for index in range(sent, due):
                    items.append("{" + f'"id":{next_id},' + requests[index] + "}")
                    next_id += 1
                    intended = start + index / rate
                    phase.lag_ms.append((now - intended) * 1000)
                body = ("[" + ",".join(items) + "]").encode()
                task = asyncio.ensure_future(post(body))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                phase.requests += 1
                sent = due
                continue
            await asyncio.sleep(TICK)
        phase.seconds = loop.time() - start
        if in_flight:
            await asyncio.wait(in_flight)
        phase.transactions = total


def run_phase(
    node: Node, target: str, round_number: int, requests: list[str], args: argparse.Namespace
) -> Phase:
    phase = Phase(target=target, round=round_number)
    proxy = RpcProxy(node.rpc_url).start() if target == "proxy" else None
    try:
        url = proxy.url if proxy is not None else node.rpc_url
        proxy_before = proxy.thread_cpu_seconds() if proxy is not None else 0.0
        cpu_before = time.process_time()
        node_before = node_cpu_seconds(node.pid)
        wall = time.monotonic()
        asyncio.run(send_open_loop(url, requests, args.rate, args.connections, phase))
        wall = time.monotonic() - wall
        phase.process_cpu = time.process_time() - cpu_before
        phase.node_cpu_share = (node_cpu_seconds(node.pid) - node_before) / wall
        if proxy is not None:
            phase.proxy_cpu = proxy.thread_cpu_seconds() - proxy_before
    finally:
        if proxy is not None:
            proxy.stop()
    return phase


def wait_for_pool_to_drain(node: Node, limit: float = 60.0) -> float:
    """Seconds until anvil's pool is empty, so the next phase starts on a quiet node."""
    started = time.monotonic()
    while node.kind == "anvil" and time.monotonic() - started < limit:
        status = call(node.rpc_url, "txpool_status")
        if sum(int(str(status[key]), 0) for key in ("pending", "queued")) == 0:
            break
        time.sleep(0.25)
    return time.monotonic() - started


# ---------------------------------------------------------------------------------------- report


def show(phase: Phase) -> None:
    f = phase.figures()
    proxy = (
        f"  proxy CPU {f['proxy_cpu_us_per_request']:.0f} us/request, {f['proxy_cpu_us_per_tx']:.1f} us/tx "
        f"({f['proxy_cpu_share'] * 100:.1f} % of a core)"
        if phase.proxy_cpu is not None
        else ""
    )
    print(
        f"round {phase.round} {phase.target:6} {f['sent_tx_per_s']:7.0f} tx/s  {phase.requests:5} requests "
        f"({f['tx_per_request']:.1f} tx each)  answered {phase.answered}/{phase.transactions}"
        f"{f' errors {phase.errors}' if phase.errors else ''}"
        f"{f' failed requests {phase.failed_requests}' if phase.failed_requests else ''}\n"
        f"    latency p50 {f['latency_p50_ms']:.2f} ms  p99 {f['latency_p99_ms']:.2f} ms  "
        f"max {f['latency_max_ms']:.1f} ms  send lag p99 {f['lag_p99_ms']:.1f} ms  "
        f"process CPU {f['process_cpu_us_per_request']:.0f} us/request  node {phase.node_cpu_share * 100:.0f} %"
        f"{proxy}" + (f"\n    first error: {phase.first_error}" if phase.first_error else "")
    )


def summarize(phases: list[Phase]) -> dict[str, Any]:
    def median_of(target: str, key: str) -> float:
        values = [p.figures()[key] for p in phases if p.target == target]
        return statistics.median(values) if values else math.nan

    out: dict[str, Any] = {}
    for key in ("latency_p50_ms", "latency_p99_ms", "tx_per_request", "process_cpu_us_per_request"):
        out[key] = {"direct": median_of("direct", key), "proxy": median_of("proxy", key)}
        out[key]["added"] = out[key]["proxy"] - out[key]["direct"]
    for key in ("proxy_cpu_us_per_request", "proxy_cpu_us_per_tx", "proxy_cpu_share"):
        out[key] = median_of("proxy", key)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5000, help="transactions per second (default 5000)")
    parser.add_argument("--seconds", type=float, default=10, help="length of each phase (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of direct + proxy (default 2)")
    parser.add_argument("--connections", type=int, default=4, help="keep-alive connections (default 4)")
    parser.add_argument("--senders", type=int, default=200, help="senders per phase (default 200)")
    parser.add_argument("--node", choices=("anvil", "stub"), default="anvil", help="the node (default anvil)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--serve-stub", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_stub:
        serve_stub()
        return 0

    problem = pin_self()
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {load}")
    count = int(args.rate * args.seconds)
    phases: list[Phase] = []
    with Node(args.node) as node:
        print(f"pinning: {pin_to(node.pid, NODE_CPU)}, generator and proxy on CPU {GENERATOR_CPU}" if problem is None
              else f"pinning skipped: {problem}")  # fmt: skip
        print(
            f"node: {args.node}; load: {args.rate:g} tx/s for {args.seconds:g} s per phase ({count} transfers), "
            f"{args.connections} connections, batches every {TICK * 1000:g} ms; {args.rounds} rounds"
        )
        for round_number in range(1, args.rounds + 1):
            order = ("direct", "proxy") if round_number % 2 else ("proxy", "direct")
            for target in order:
                requests = sign_phase(node, f"{round_number}-{target}", count, args.senders)
                drained = wait_for_pool_to_drain(node)
                phase = run_phase(node, target, round_number, requests, args)
                phases.append(phase)
                show(phase)
                if drained > 1:
                    print(f"    (waited {drained:.1f} s for the pool to drain before this phase)")
        summary = summarize(phases)
    print("\nproxy overhead (median over phases; added = proxy - direct):")
    for key in ("latency_p50_ms", "latency_p99_ms"):
        figures = summary[key]
        print(
            f"  {key[:-3]:12} direct {figures['direct']:.2f} ms, proxy {figures['proxy']:.2f} ms, "
            f"added {figures['added']:+.2f} ms"
        )
    print(
        f"  proxy thread CPU: {summary['proxy_cpu_us_per_request']:.0f} us per request "
        f"({summary['tx_per_request']['proxy']:.1f} tx), {summary['proxy_cpu_us_per_tx']:.1f} us per tx, "
        f"{summary['proxy_cpu_share'] * 100:.1f} % of a core"
    )
    cpu = summary["process_cpu_us_per_request"]
    print(
        f"  process CPU per request: direct {cpu['direct']:.0f} us, proxy {cpu['proxy']:.0f} us "
        f"(added {cpu['added']:+.0f} us)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"phases": [p.figures() for p in phases], "summary": summary}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
