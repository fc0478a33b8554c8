"""The bootstrap of a relative change between two runs, over their per-second samples.

Why resample seconds, not transactions: the latencies of one second share its blocks, its backlog
and the node's mood, so they are not independent; resampling whole seconds (a cluster bootstrap)
keeps that, and gives intervals as wide as the run's second-to-second wobble really is. Each side is
resampled on its own; the statistic of a resample is the mean of its seconds (a rate) or the
quantile of the latencies pooled over its seconds (a latency). The 95 % interval of
``new / baseline - 1`` is the 2.5th and 97.5th percentile of that ratio over the resamples.

Latencies are pooled through per-second histograms on a fine log scale (:data:`LATENCY_BINS`, 1.6 %
apart), so one resample is one row of a matrix product, not a sort: a ten-minute run costs the same
handful of numpy calls as a five-second one. The generator is seeded from the metric's name, so the
same two runs always get the same interval and the same verdict.

Few seconds make the plain percentile interval too narrow (with three seconds it misses the truth
far more often than one time in twenty), and a gate must not fail on noise. The interval is therefore
the *expanded* percentile interval (Hesterberg, "What teachers should know about the bootstrap",
2015): the percentiles at ``α' = 2Φ(−√(n/(n−1))·t(α/2, n−1))`` instead of ``α``, with ``n`` the
fewer seconds of the two runs; it tends to the plain one as ``n`` grows (n = 30: 1.9 % instead of
2.5 %), and with four seconds or fewer it spans nearly every resample. Below :data:`MIN_SECONDS`
there is no interval at all.
"""

from __future__ import annotations

import dataclasses
import math
import zlib

import numpy as np

#: Resamples per comparison.
RESAMPLES = 2000
#: The interval's confidence.
CONFIDENCE = 0.95
#: Fewer seconds (on either side) than this give no interval: the change is shown, never judged.
MIN_SECONDS = 3
#: Student's t, 97.5th percentile, for 1..30 degrees of freedom (the 95 % two-sided quantile).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
#: Latency histogram edges (seconds): 100 µs to about 28 h, 1.6 % apart.
LATENCY_BINS = np.geomspace(1e-4, 1e5, 1301)
_CENTRES = np.sqrt(LATENCY_BINS[:-1] * LATENCY_BINS[1:])


@dataclasses.dataclass(frozen=True)
class Change:
    """A relative change ``new / baseline - 1`` and its bootstrap interval (``nan`` when unknown)."""

    change: float
    low: float
    high: float


def latency_histograms(seconds: np.ndarray, latencies_s: np.ndarray, count: int) -> np.ndarray:
    """Per-second counts on :data:`LATENCY_BINS`: ``seconds`` are sample indices in ``0..count-1``."""
    bins = np.clip(np.searchsorted(LATENCY_BINS, latencies_s, side="right") - 1, 0, len(_CENTRES) - 1)
    flat = np.bincount(seconds * len(_CENTRES) + bins, minlength=count * len(_CENTRES))
    return flat[: count * len(_CENTRES)].reshape(count, len(_CENTRES)).astype(np.float64)


def _weights(rng: np.random.Generator, count: int) -> np.ndarray:
    """How often each of ``count`` seconds is drawn in each resample (rows sum to ``count``)."""
    return rng.multinomial(count, np.full(count, 1.0 / count), size=RESAMPLES).astype(np.float64)


def _resampled_means(rng: np.random.Generator, samples: np.ndarray) -> np.ndarray:
    return _weights(rng, samples.size) @ samples / samples.size


def _resampled_quantiles(rng: np.random.Generator, histograms: np.ndarray, quantile: float) -> np.ndarray:
    pooled = _weights(rng, histograms.shape[0]) @ histograms
    totals = pooled.sum(axis=1)
    ranks = np.maximum(1.0, np.ceil(quantile * totals))
    index = (np.cumsum(pooled, axis=1) >= ranks[:, None]).argmax(axis=1)
    values = _CENTRES[index]
    values[totals == 0] = np.nan
    return values


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


def rate_change(name: str, baseline: np.ndarray, new: np.ndarray) -> Change:
    """The change of the mean of per-second ``baseline`` samples to that of ``new``."""
    base = np.asarray(baseline, dtype=np.float64)
    now = np.asarray(new, dtype=np.float64)
    if base.size == 0 or now.size == 0 or base.mean() <= 0:
        return Change(math.nan, math.nan, math.nan)
    rng = np.random.default_rng(_seed(name))
    ratios = _ratios(_resampled_means(rng, base), _resampled_means(rng, now))
    return _change(float(now.mean() / base.mean() - 1), ratios, min(base.size, now.size))


def quantile_change(
    name: str,
    quantile: float,
    baseline: np.ndarray,
    new: np.ndarray,
    point: tuple[float, float] | None = None,
) -> Change:
    """The change of the ``quantile`` of latencies pooled per second: ``baseline`` and ``new`` are
    :func:`latency_histograms`; ``point`` the exact quantiles of both runs, else the histograms'."""
    rng = np.random.default_rng(_seed(name))
    if baseline.sum() == 0 or new.sum() == 0:
        return Change(math.nan, math.nan, math.nan)
    ratios = _ratios(_resampled_quantiles(rng, baseline, quantile), _resampled_quantiles(rng, new, quantile))
    if point is None:
        point = (_pooled_quantile(baseline, quantile), _pooled_quantile(new, quantile))
    before, after = point
    change = after / before - 1 if before > 0 else math.nan
    seconds = min(int((baseline.sum(axis=1) > 0).sum()), int((new.sum(axis=1) > 0).sum()))
    return _change(change, ratios, seconds)


def _pooled_quantile(histograms: np.ndarray, quantile: float) -> float:
    pooled = histograms.sum(axis=0)
    rank = max(1.0, math.ceil(quantile * pooled.sum()))
    return float(_CENTRES[int((np.cumsum(pooled) >= rank).argmax())])


def _ratios(base: np.ndarray, now: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = now / base - 1
    return ratios[np.isfinite(ratios)]


def expanded_tail(seconds: int) -> float:
    """The lower tail (in percent) of the expanded percentile interval for ``seconds`` samples."""
    df = seconds - 1
    z = 1.959964
    t = _T975[df - 1] if df <= len(_T975) else z + (z**3 + z) / (4 * df)  # Cornish-Fisher past 30
    alpha = 2 * 0.5 * math.erfc(math.sqrt(seconds / df) * t / math.sqrt(2))
    return alpha / 2 * 100


def _change(point: float, ratios: np.ndarray, seconds: int) -> Change:
    if ratios.size == 0 or seconds < MIN_SECONDS:
        return Change(point, math.nan, math.nan)
    tail = expanded_tail(seconds)
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return Change(point, float(low), float(high))
