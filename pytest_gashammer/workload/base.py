"""The contract every transaction template honours.

A template turns "send one more transaction of this kind from sender *i*" into transaction
fields. It declares its gas model (a nominal figure, calibrated at setup with ``eth_estimateGas``
and corrected from receipts), the receipt status it expects, and any setup it needs. Templates
are referenced by name or import path, never pickled, so an edge in another process can build
the same transactions from the same seed.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol


@dataclass
class TemplateContext:
    """What a template may use when building transactions.

    ``setup`` holds the plain data the template's :meth:`Template.setup` returned (contract
    addresses and the like), so an edge that did not run the setup can still build.
    """

    chain_id: int
    seed: int
    sender_addresses: list[str]
    setup: dict[str, Any] = field(default_factory=dict)


class SetupContext(Protocol):
    """What a template's one-time setup may do on the chain. Every call waits for inclusion."""

    chain_id: int
    sender_addresses: list[str]

    async def deploy(self, init_code: bytes, *, gas: int | None = None) -> str:
        """Deploy from the funder; the new contract's address."""
        ...

    async def send_from_funder(self, calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Send ``{"to", "data", "value", "gas"}`` calls from the funder; their receipts, in order."""
        ...

    async def send_from_senders(self, calls: Sequence[tuple[int, Mapping[str, Any]]]) -> list[dict[str, Any]]:
        """Send ``(sender_index, call)`` pairs from the run's senders; their receipts, in order."""
        ...

    async def call(self, to: str, data: bytes) -> bytes:
        """``eth_call`` at the latest block."""
        ...


class Template:
    """Base class for transaction templates.

    Subclasses set :attr:`name`, :attr:`nominal_gas` and override :meth:`build`. ``build`` must be
    deterministic given ``rng`` (seeded per edge from the run seed) and must not do I/O.
    """

    name: ClassVar[str] = ""
    #: Gas one transaction is expected to use before calibration.
    nominal_gas: ClassVar[int] = 21_000
    #: Receipt status a correct chain gives this template's transactions (1 success, 0 revert).
    expected_status: ClassVar[int] = 1
    #: Relative deviation of observed gas from the model that the oracle tolerates.
    gas_tolerance: ClassVar[float] = 0.10
    #: Parameters a scenario may set, with their defaults (their types are the accepted types).
    params: ClassVar[dict[str, Any]] = {}
    #: Whether the gas model is calibrated with ``eth_estimateGas`` at setup. A template whose
    #: transactions cannot be estimated (they revert by design) sets False and keeps its nominal gas.
    calibrate: ClassVar[bool] = True

    def __init__(self, context: TemplateContext, params: Mapping[str, Any] | None = None) -> None:
        # Each template keeps its own copy, so one template's setup data never replaces another's.
        self.context = dataclasses.replace(context, setup=dict(context.setup))
        self.options: dict[str, Any] = {**self.params, **dict(params or {})}

    @classmethod
    def check_params(cls, raw: Mapping[str, Any], *, where: str = "") -> dict[str, Any]:
        """Validate scenario parameters against :attr:`params`; raises ConfigError naming the fix."""
        from pytest_gashammer.errors import ConfigError

        label = where or cls.name or cls.__name__
        checked: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in cls.params:
                accepted = ", ".join(sorted(cls.params)) or "none"
                raise ConfigError(f"{label}: unknown parameter {key!r}; accepted: {accepted}")
            default = cls.params[key]
            expected = (int, float) if isinstance(default, float) else type(default)
            if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, expected):
                raise ConfigError(f"{label}: parameter {key}={value!r} must be a {type(default).__name__}")
            checked[key] = value
        cls.validate_params({**cls.params, **checked}, label)
        return checked

    @classmethod
    def validate_params(cls, params: dict[str, Any], label: str) -> None:
        """Check parameter values together (ranges, combinations); raise ConfigError naming the fix."""

    @staticmethod
    def require_between(
        params: Mapping[str, Any], name: str, low: float, high: float, label: str, meaning: str
    ) -> None:
        """For :meth:`validate_params`: ConfigError unless ``low <= params[name] <= high`` (NaN fails)."""
        from pytest_gashammer.errors import ConfigError

        value = params[name]
        if not low <= value <= high:
            raise ConfigError(
                f"{label}: parameter {name}={value!r} must be between {low} and {high} ({meaning})"
            )

    @classmethod
    def nominal_gas_for(cls, params: Mapping[str, Any]) -> float:
        """The starting gas estimate for these parameters (before calibration)."""
        return float(cls.nominal_gas)

    async def setup(self, ctx: SetupContext) -> dict[str, Any]:
        """One-time chain setup before the clock starts (deploy a token, hand out balances).

        Runs once per run, before gas calibration, with funded senders. Return plain data
        (addresses, numbers); it reaches :meth:`use_setup` on every edge.
        """
        return {}

    def use_setup(self, data: Mapping[str, Any]) -> None:
        """Adopt what :meth:`setup` returned. Override to precompute from it; keep the call cheap."""
        self.context.setup = dict(data)

    def build(self, sender_index: int, rng: random.Random) -> dict[str, Any]:
        """Fields ``to``, ``value`` (wei, int) and ``data`` (bytes) for one transaction."""
        raise NotImplementedError

    def estimate_request(self, sender: str) -> dict[str, Any]:
        """A call object for ``eth_estimateGas`` representative of :meth:`build`'s output."""
        fields = self.build(0, random.Random(self.context.seed))
        request: dict[str, Any] = {"from": sender, "value": hex(int(fields.get("value", 0)))}
        to = fields.get("to")
        if to:
            request["to"] = to if isinstance(to, str) else "0x" + bytes(to).hex()
        data = fields.get("data") or b""
        if data:
            request["data"] = "0x" + bytes(data).hex()
        return request

    def gas_limit(self, modelled_gas: float) -> int:
        """The gas limit to sign with, given the current model. Headroom guards against estimate drift."""
        return max(21_000, int(modelled_gas * 1.25))
