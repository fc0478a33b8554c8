"""Native value transfer: the 21,000-gas baseline every chain supports."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from pytest_gashammer.workload.base import Template


class TransferTemplate(Template):
    """Sends 1 wei to a recipient drawn from the run's seeded generator."""

    name: ClassVar[str] = "transfer"
    nominal_gas: ClassVar[int] = 21_000
    expected_status: ClassVar[int] = 1
    gas_tolerance: ClassVar[float] = 0.0

    def build(self, sender_index: int, rng: random.Random) -> dict[str, Any]:
        recipient = "0x" + rng.getrandbits(160).to_bytes(20, "big").hex()
        return {"to": recipient, "value": 1, "data": b""}

    def gas_limit(self, modelled_gas: float) -> int:
        # Plain transfers cost exactly the intrinsic gas; any other limit only reserves block space.
        return 21_000
