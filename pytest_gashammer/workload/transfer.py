"""Native value transfer: the 21,000-gas baseline every chain supports."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.workload.base import Template, TemplateContext


class TransferTemplate(Template):
    """Sends 1 wei to a recipient drawn by the run's seeded generator from a fixed pool.

    A fixed pool (``recipients`` addresses derived from the seed), not a fresh address per
    transaction: every new account makes the node's state, and so its per-block work, grow, and a
    long run would end up measuring state growth rather than transfer throughput.
    """

    name: ClassVar[str] = "transfer"
    nominal_gas: ClassVar[int] = 21_000
    expected_status: ClassVar[int] = 1
    gas_tolerance: ClassVar[float] = 0.0
    params: ClassVar[dict[str, Any]] = {"recipients": 1024}

    def __init__(self, context: TemplateContext, params: Any = None) -> None:
        super().__init__(context, params)
        seed = context.seed.to_bytes(32, "big")
        self._recipients = [
            keccak256(b"gashammer/recipient" + seed + index.to_bytes(8, "big"))[12:]
            for index in range(int(self.options["recipients"]))
        ]

    @classmethod
    def validate_params(cls, params: dict[str, Any], label: str) -> None:
        cls.require_between(
            params, "recipients", 1, 1_000_000, label, "the seeded pool transfers are sent to"
        )

    def build(self, sender_index: int, rng: random.Random) -> dict[str, Any]:
        return {"to": self._recipients[rng.randrange(len(self._recipients))], "value": 1, "data": b""}

    def gas_limit(self, modelled_gas: float) -> int:
        # Plain transfers cost exactly the intrinsic gas; any other limit only reserves block space.
        return 21_000
