"""Templates used by the acceptance tests (importable by path, as user templates must be)."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from pytest_gashammer.workload.transfer import TransferTemplate


class SometimesTooExpensive(TransferTemplate):
    """Every seventh transaction moves more than any sender holds, so the node refuses it."""

    name: ClassVar[str] = "sometimes-too-expensive"

    def __init__(self, context: Any, params: Any = None) -> None:
        super().__init__(context, params)
        self.built = 0

    def build(self, sender_index: int, rng: random.Random) -> dict[str, Any]:
        fields = super().build(sender_index, rng)
        self.built += 1
        if self.built % 7 == 0:
            fields["value"] = 10**30
        return fields
