"""Open-loop arrivals at a gas rate: when each transaction is *meant* to be sent, and of which template.

Arrival times are fixed by the plan and the seed, never by how fast the node answers, so latency
is measured from the intended send time and back-pressure cannot hide it (no coordinated
omission). The gas rate is piecewise linear over the phases; the transaction rate is the gas
rate divided by the mean gas per transaction, which follows the gas model as it is calibrated.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Sequence


@dataclasses.dataclass(frozen=True)
class Phase:
    """One stretch of the run with a gas rate moving linearly from ``gas_from`` to ``gas_to``."""

    name: str
    start: float
    end: float
    gas_from: float
    gas_to: float

    @property
    def length(self) -> float:
        return self.end - self.start


class ArrivalSchedule:
    """Yields ``(t_seconds, template_index)`` in order.

    Templates share the gas rate by weight; with gas per transaction ``g_i`` and gas share
    ``w_i``, template ``i`` sends ``w_i / g_i`` of every gas unit's worth of transactions. Which
    template comes next is chosen by smooth weighted round-robin, so the mix is exact over any
    window, not only on average.
    """

    def __init__(
        self,
        phases: Sequence[Phase],
        shares: Sequence[float],
        gas_per_tx: Callable[[int], float],
        *,
        arrival: str = "constant",
        seed: int = 0,
        gas_scale: float = 1.0,
        gas_version: Callable[[], int] | None = None,
    ) -> None:
        """``gas_version``, when given, changes whenever ``gas_per_tx`` would answer differently;
        the mix is then recomputed only on a change instead of at every arrival (the hot path)."""
        self._phases = [phase for phase in phases if phase.length > 0]
        self._shares = list(shares)
        self._gas_per_tx = gas_per_tx
        self._poisson = arrival == "poisson"
        self._rng = random.Random(seed ^ 0x5EED)
        self._gas_scale = gas_scale
        self._credits = [0.0] * len(shares)
        self._t = self._phases[0].start if self._phases else 0.0
        self._phase_index = 0
        self.end = self._phases[-1].end if self._phases else 0.0
        self._gas_seen: tuple[float, ...] = ()
        self._gas_version = gas_version
        self._version_seen: int | None = None
        self._mean_gas = 0.0
        self._tx_shares: list[float] = []

    def _refresh(self) -> None:
        """Recompute the mix only when the gas model moved (it changes rarely; arrivals are many)."""
        if self._gas_version is not None:
            version = self._gas_version()
            if version == self._version_seen:
                return
            self._version_seen = version
        gas = tuple(max(self._gas_per_tx(i), 1.0) for i in range(len(self._shares)))
        if gas != self._gas_seen:
            self._gas_seen = gas
            weights = [share / g for share, g in zip(self._shares, gas, strict=True)]
            total = sum(weights)
            self._mean_gas = 1.0 / total
            self._tx_shares = [weight / total for weight in weights]

    def mean_gas(self) -> float:
        self._refresh()
        return self._mean_gas

    def _advance(self, gas_needed: float) -> float | None:
        """Move forward until ``gas_needed`` gas has been offered; the time reached, or None past the end."""
        if self._phase_index < len(self._phases):
            # Fast path (the hot one): inside a constant-rate phase the next arrival is one division
            # away; ramps and phase boundaries take the general solver below.
            phase = self._phases[self._phase_index]
            rate = phase.gas_from * self._gas_scale
            if phase.gas_from == phase.gas_to and rate > 0 and self._t >= phase.start:
                t = self._t + gas_needed / rate
                if t <= phase.end:
                    self._t = t
                    return t
        while self._phase_index < len(self._phases):
            phase = self._phases[self._phase_index]
            start = max(self._t, phase.start)
            slope = (phase.gas_to - phase.gas_from) / phase.length * self._gas_scale
            rate_at_start = (
                phase.gas_from + (phase.gas_to - phase.gas_from) * (start - phase.start) / phase.length
            )
            rate_at_start *= self._gas_scale
            remaining = phase.end - start
            available = rate_at_start * remaining + 0.5 * slope * remaining * remaining
            if available >= gas_needed and available > 0:
                # Solve rate*dt + slope/2*dt^2 = gas_needed for the smallest dt >= 0, in the form
                # 2g / (r + sqrt(r^2 + 2*slope*g)) that does not cancel when the slope is tiny.
                disc = max(rate_at_start * rate_at_start + 2.0 * slope * gas_needed, 0.0)
                denominator = rate_at_start + math.sqrt(disc)
                dt = 2.0 * gas_needed / denominator if denominator > 0 else 0.0
                self._t = min(start + max(dt, 0.0), phase.end)
                return self._t
            gas_needed -= max(available, 0.0)
            self._phase_index += 1
            self._t = phase.end
        return None

    def next(self) -> tuple[float, int] | None:
        self._refresh()
        t = self._advance(self._mean_gas * (self._rng.expovariate(1.0) if self._poisson else 1.0))
        if t is None:
            return None
        shares = self._tx_shares
        if len(shares) == 1:
            return t, 0
        best = 0
        for index, share in enumerate(shares):
            self._credits[index] += share
            if self._credits[index] > self._credits[best]:
                best = index
        self._credits[best] -= 1.0
        return t, best

    def expected_transactions(self) -> float:
        gas = (
            sum((phase.gas_from + phase.gas_to) / 2 * phase.length for phase in self._phases)
            * self._gas_scale
        )
        return gas / self.mean_gas()
