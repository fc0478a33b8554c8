"""The gas model: what each template's transaction is believed to cost, as the run learns it.

It starts at each template's nominal gas, is calibrated with ``eth_estimateGas`` before the clock
starts (:mod:`~pytest_gashammer.edge.preparation`) and is corrected from receipts during the run
(:mod:`~pytest_gashammer.edge.inclusion`). The arrival schedule and the signer read it; the
version changes whenever a value does, so the schedule recomputes its mix only then.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_gashammer.workload.base import Template


class GasModel:
    """Gas per transaction for each template of a plan, with a version that moves on every change."""

    def __init__(self, values: Sequence[float]) -> None:
        #: Gas per transaction, by template index. Written in place (readers hold this list).
        self.values = [float(value) for value in values]
        self.version = 0
        #: Receipts seen so far: [gas used summed, receipts counted] per template.
        self.observed: list[list[float]] = [[0.0, 0.0] for _ in self.values]

    @classmethod
    def nominal(cls, templates: Sequence[Template]) -> GasModel:
        return cls([template.nominal_gas_for(template.options) for template in templates])

    def set(self, index: int, gas: float) -> None:
        self.values[index] = gas
        self.version += 1

    def replace(self, values: Sequence[float]) -> None:
        """Take over a calibrated model (the hive's preparation) in one step."""
        self.values[:] = [float(value) for value in values]
        self.version += 1

    def gas_per_tx(self, index: int) -> float:
        return self.values[index]

    def current_version(self) -> int:
        return self.version

    def settle(self) -> list[float]:
        """The model as the receipts left it: the mean gas used per template that had any."""
        for index, (total, count) in enumerate(self.observed):
            if count:
                self.values[index] = total / count
        return list(self.values)
