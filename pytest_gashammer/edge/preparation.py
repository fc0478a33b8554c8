"""A run's one-time setup: fees, funding of the senders, template setup and gas calibration.

The hive calls :func:`prepare_run` once per multi-edge run, with the whole sender range, and
hands the :class:`RunPreparation` to every edge inside its assignment, so the funder's nonces are
used by one process only and contracts are deployed once. An edge without one (the local hive)
runs :func:`prepare` itself before its clock starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pytest_gashammer.chain.rpc import AsyncRpcClient, RpcError, TransportError
from pytest_gashammer.edge.accounts import Sender, derive_senders
from pytest_gashammer.edge.funding import fund_senders
from pytest_gashammer.edge.gas_model import GasModel
from pytest_gashammer.edge.setup import EdgeSetupContext
from pytest_gashammer.errors import GashammerError
from pytest_gashammer.results import FALLBACK_NOTE, FEES_NOTE
from pytest_gashammer.scenario.spec import ScenarioPlan
from pytest_gashammer.workload.base import Template, TemplateContext
from pytest_gashammer.workload.rate import ArrivalSchedule
from pytest_gashammer.workload.registry import resolve_template

if TYPE_CHECKING:
    from pytest_gashammer.edge.runtime import EdgeAssignment

#: How far above the setup fee cap the submitter may raise it as the base fee climbs; the senders
#: are funded for the highest cap, so this multiplies what a run asks of the funder.
FEE_HEADROOM = 3

__all__ = [
    "FEE_HEADROOM",
    "REPRICE_STEP",
    "RunPreparation",
    "fee_cap_for",
    "next_fee_cap",
    "check_chain_id",
    "make_schedule",
    "make_templates",
    "prepare",
    "prepare_run",
]


@dataclasses.dataclass
class RunPreparation:
    """What a run's one-time setup established, as plain data every edge can adopt."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    #: What each template's setup returned (contract addresses and the like), by template index.
    template_setup: list[dict[str, Any]]
    #: The calibrated gas per transaction, by template index.
    gas_model: list[float]
    #: The highest fee cap the submitter may raise to as the base fee climbs: what the senders were
    #: funded for. 0, or equal to ``max_fee_per_gas``: the cap is fixed (``max_fee_per_gas=`` given).
    fee_ceiling: int = 0
    #: What setup chose or fell back to (the tip, the fee cap), for the run's notes.
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def follows_base_fee(self) -> bool:
        return self.fee_ceiling > self.max_fee_per_gas

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunPreparation:
        return cls(
            max_fee_per_gas=int(data["max_fee_per_gas"]),
            max_priority_fee_per_gas=int(data["max_priority_fee_per_gas"]),
            template_setup=[dict(setup) for setup in data["template_setup"]],
            gas_model=[float(gas) for gas in data["gas_model"]],
            fee_ceiling=int(data.get("fee_ceiling") or 0),
            notes=[str(note) for note in data.get("notes") or ()],
        )


def fee_cap_for(base_fee: int, tip: int) -> int:
    """The fee cap for a base fee: twice it plus the tip, so the base fee may double before the
    transaction is priced out (EIP-1559 lets it rise 12.5 % per full block)."""
    return max(2 * base_fee + tip, 1)


#: The submitter re-prices when the fee cap the latest base fee calls for is this much above the
#: current one (or under half of it): signing is prepared per fee cap, so the cap moves by steps,
#: not per block.
REPRICE_STEP = 1.25


def next_fee_cap(current: int, base_fee: int, tip: int, ceiling: int) -> int | None:
    """The new fee cap once ``base_fee`` has moved far enough from what ``current`` was set for,
    never above ``ceiling`` (what the senders were funded for); None: keep ``current``."""
    wanted = min(fee_cap_for(base_fee, tip), ceiling)
    if wanted > current and (wanted >= current * REPRICE_STEP or wanted == ceiling):
        return wanted
    if wanted * 2 < current:
        return wanted
    return None


async def check_chain_id(rpc: AsyncRpcClient, assignment: EdgeAssignment) -> int:
    """The node's chain id, which must be the one the plan was made for."""
    try:
        chain_id = int(await rpc.call("eth_chainId"), 16)
    except TransportError as exc:
        raise GashammerError(
            f"edge {assignment.edge_id}: cannot reach {assignment.rpc_url} ({exc})"
        ) from None
    if chain_id != assignment.chain_id:
        raise GashammerError(
            f"edge {assignment.edge_id}: node reports chain id {chain_id}, plan expects {assignment.chain_id}"
        )
    return chain_id


def make_templates(
    plan: ScenarioPlan, chain_id: int, senders: Sequence[Sender]
) -> tuple[list[type[Template]], list[Template]]:
    """The plan's workload as template classes and instances over ``senders``."""
    context = TemplateContext(
        chain_id=chain_id, seed=plan.seed, sender_addresses=[s.address for s in senders]
    )
    classes = [resolve_template(name) for name, _, _ in plan.workload]
    templates = [cls(context, params) for cls, (_, _, params) in zip(classes, plan.workload, strict=True)]
    return classes, templates


def make_schedule(plan: ScenarioPlan, assignment: EdgeAssignment, gas_model: GasModel) -> ArrivalSchedule:
    """The edge's arrival schedule: its share of the plan's gas rate, priced by ``gas_model``."""
    return ArrivalSchedule(
        plan.phases,
        [share for _, share, _ in plan.workload],
        gas_model.gas_per_tx,
        arrival=plan.arrival,
        seed=plan.seed + assignment.sender_start,
        gas_scale=assignment.gas_share,
        gas_version=gas_model.current_version,
    )


async def prepare(
    rpc: AsyncRpcClient,
    *,
    plan: ScenarioPlan,
    chain_id: int,
    funder_key: str,
    senders: Sequence[Sender],
    templates: Sequence[Template],
    gas_model: GasModel,
    schedule: ArrivalSchedule,
    notes: list[str],
) -> RunPreparation:
    """Fees, funding of ``senders``, template setup (on ``templates``) and calibration of ``gas_model``.

    ``schedule`` prices its transactions with ``gas_model``: funding follows the calibrated cost.
    What could not be calibrated is said in ``notes``.
    """
    setup_notes: list[str] = []
    tip = plan.max_priority_fee_per_gas
    tip_source = "max_priority_fee_per_gas="
    if tip is None:
        tip_source = "eth_maxPriorityFeePerGas"
        try:
            tip = int(await rpc.call("eth_maxPriorityFeePerGas"), 16)
        except (RpcError, TransportError) as exc:
            tip = 0
            tip_source = "the fallback above"
            setup_notes.append(
                f"{FALLBACK_NOTE}tip 0 wei: the node did not answer eth_maxPriorityFeePerGas ({exc}); "
                "set max_priority_fee_per_gas= to choose one"
            )
    if plan.max_fee_per_gas is not None:
        max_fee = fee_ceiling = plan.max_fee_per_gas
        setup_notes.append(
            f"{FEES_NOTE}fee cap {max_fee:,} wei from max_fee_per_gas=, fixed for the run; "
            f"tip {tip:,} wei from {tip_source}"
        )
    else:
        latest = await rpc.call("eth_getBlockByNumber", "latest", False)
        base_fee_text = latest.get("baseFeePerGas")
        base_fee = int(base_fee_text or "0x0", 16)
        max_fee = fee_cap_for(base_fee, tip)
        # Fund for a base fee that climbs during the run: the submitter follows it up to here.
        fee_ceiling = max_fee * FEE_HEADROOM
        setup_notes.append(
            f"{FEES_NOTE}fee cap {max_fee:,} wei = 2 x the base fee at setup ({base_fee:,} wei) + tip "
            f"{tip:,} wei (from {tip_source}); it follows the base fee during the run, up to "
            f"{fee_ceiling:,} wei, what the senders were funded for"
        )
        if base_fee_text is None:
            setup_notes.append(
                f"{FALLBACK_NOTE}the latest block has no baseFeePerGas (no EIP-1559 base fee): the fee "
                "cap is the tip alone; set max_fee_per_gas= to choose one"
            )
    notes.extend(setup_notes)

    async def fund() -> None:
        expected = schedule.expected_transactions()
        per_sender = expected / max(len(senders), 1) * 1.5 + 10
        gas_limits = [
            template.gas_limit(gas) for template, gas in zip(templates, gas_model.values, strict=True)
        ]
        worst_tx_cost = max(gas_limits) * fee_ceiling + 10**12
        await fund_senders(
            rpc,
            chain_id=chain_id,
            funder_key=funder_key,
            senders=senders,
            amount_wei=int(per_sender * worst_tx_cost),
            max_fee_per_gas=max_fee,
            max_priority_fee_per_gas=tip,
        )

    # Fund from the nominal model first: setup and calibration need senders with ETH.
    await fund()
    setup_context = EdgeSetupContext(
        rpc,
        chain_id=chain_id,
        funder_key=funder_key,
        senders=senders,
        max_fee_per_gas=max_fee,
        max_priority_fee_per_gas=tip,
    )
    for template in templates:
        template.use_setup(await template.setup(setup_context))
    for index, template in enumerate(templates):
        if not template.calibrate:
            continue
        try:
            request = template.estimate_request(senders[0].address)
            gas_model.set(index, float(int(await rpc.call("eth_estimateGas", request), 16)))
        except (RpcError, TransportError) as exc:
            notes.append(
                f"eth_estimateGas for {plan.workload[index][0]} failed ({exc}); using its nominal gas"
            )
    # Calibration may have raised the cost per transaction: top the senders up to match.
    await fund()
    return RunPreparation(
        max_fee_per_gas=max_fee,
        max_priority_fee_per_gas=tip,
        template_setup=[dict(template.context.setup) for template in templates],
        gas_model=list(gas_model.values),
        fee_ceiling=fee_ceiling,
        notes=setup_notes,
    )


def prepare_run(assignment: EdgeAssignment) -> RunPreparation:
    """Do a run's one-time setup for every sender in ``assignment`` (blocking; its own event loop).

    The hive calls this once per multi-edge run with the whole sender range and puts the result in
    every edge's :attr:`EdgeAssignment.preparation`.
    """
    plan = ScenarioPlan.from_dict(assignment.plan)

    async def main() -> RunPreparation:
        async with AsyncRpcClient(assignment.rpc_url, connections=assignment.connections) as rpc:
            chain_id = await check_chain_id(rpc, assignment)
            senders = derive_senders(
                plan.seed, assignment.sender_start, assignment.sender_count or plan.senders
            )
            _, templates = make_templates(plan, chain_id, senders)
            gas_model = GasModel.nominal(templates)
            return await prepare(
                rpc,
                plan=plan,
                chain_id=chain_id,
                funder_key=assignment.funder_key,
                senders=senders,
                templates=templates,
                gas_model=gas_model,
                schedule=make_schedule(plan, assignment, gas_model),
                notes=[],
            )

    return asyncio.run(main())
