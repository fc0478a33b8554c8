"""Riding out a node's bad moments: which failures are asked again, how often, how long, and a record.

A healthy chain still has bad moments under a fault timeline: a paused node (requests time out), a
restarted one (connections refused, then reset), a proxy that answers HTTP 502 or a JSON-RPC
internal error, a socket closed under a request. None of them is the node's judgement of the
request, so the request is asked again, with backoff:

- **what**: a :class:`~pytest_gashammer.chain.rpc.TransportError` whose ``reason`` says the request
  may simply not have got through (``refused``, ``reset``, ``timeout``, ``bad_answer``, ``missing``,
  HTTP 5xx, 408, 425, 429), and a JSON-RPC error that :func:`~pytest_gashammer.chain.node_errors.retry_reason`
  calls transient. A refusal (``nonce too low``, ``insufficient funds``, ...) is never asked again.
- **how often, how long**: :class:`RetryPolicy`, bounded in tries and in time since the first try,
  exponential with jitter (each wait is between half and all of its exponential step, so edges that
  failed together do not retry in lockstep, and the wait never collapses to nothing).
- **a record**: :class:`RetryStats` counts every retry by method and reason, and every request given
  up, so a run's report says what it rode out.

Nothing here runs on the hot path when nothing fails: callers reach it only from an error branch.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from typing import Any

from pytest_gashammer.chain.node_errors import retry_reason

__all__ = ["DEFAULT_POLICY", "NO_RETRY", "RetryPolicy", "RetryStats", "transient_reason"]

#: HTTP statuses that say "not now" rather than "never": timeouts, too early, too many, and 5xx.
RETRY_HTTP_STATUSES = frozenset({408, 425, 429})
#: Transport reasons where the request may simply not have got through.
RETRY_TRANSPORT_REASONS = frozenset({"refused", "reset", "timeout", "bad_answer", "missing"})


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Tries in all (the first included), the first wait, the longest wait, and a time budget.

    No new try starts once ``budget`` seconds have passed since the first one (nor when the next
    wait would end past it), so a dead node costs a caller at most about ``budget`` plus one
    request's own timeout.
    """

    attempts: int = 5
    first_delay: float = 0.05
    max_delay: float = 1.0
    budget: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy: attempts={self.attempts} must be at least 1 (the first try)")
        if self.first_delay < 0 or self.max_delay < self.first_delay or self.budget < 0:
            raise ValueError(
                f"RetryPolicy: need 0 <= first_delay ({self.first_delay}) <= max_delay ({self.max_delay}) "
                f"and budget >= 0 ({self.budget})"
            )

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """The wait before retry number ``retry`` (1 for the first): half to all of its step."""
        step = min(self.max_delay, self.first_delay * 2 ** (retry - 1))
        return step * (0.5 + 0.5 * (rng or _RNG).random())

    def next_delay(self, tries: int, elapsed: float, rng: random.Random | None = None) -> float | None:
        """After ``tries`` tries, ``elapsed`` seconds after the first: the wait before the next one,
        or None when the policy allows no more."""
        if tries >= self.attempts:
            return None
        wait = self.delay(tries, rng)
        if elapsed + wait > self.budget:
            return None
        return wait


#: Every request is asked once.
NO_RETRY = RetryPolicy(attempts=1, first_delay=0.0, max_delay=0.0, budget=0.0)
#: The JSON-RPC client's default for reads and setup calls: five retries waiting 0.8 to 1.55 s in
#: all, enough to cover a node restarting on the same port; within 5 s. (The follower and the
#: receipt loop ask again on their own after that, so a longer outage costs them nothing more.)
DEFAULT_POLICY = RetryPolicy(attempts=6)

_RNG = random.Random()


def transient_reason(error: BaseException) -> str | None:
    """Why ``error`` is worth asking again (``timeout``, ``http_502``, ``rpc_-32603``, ...), or None.

    Duck-typed on the chain's error types, so that this module needs no import of them:
    a transport error has ``retryable`` and ``reason``; a JSON-RPC error has ``code`` and ``message``.
    """
    retryable = getattr(error, "retryable", None)
    if retryable is not None:
        return str(getattr(error, "reason", "transport")) if retryable else None
    code, message = getattr(error, "code", None), getattr(error, "message", None)
    if isinstance(code, int) and isinstance(message, str):
        return retry_reason(code, message)
    return None


class RetryStats:
    """Retries by method and reason, and requests given up after the policy ran out.

    One per edge run, shared by its JSON-RPC clients and its submitter; :meth:`as_dict` is what the
    edge's report carries.
    """

    def __init__(self) -> None:
        self.retried: Counter[tuple[str, str]] = Counter()
        self.gave_up: Counter[tuple[str, str]] = Counter()
        #: Transactions whose submission outcome stayed unknown, then were settled by asking the node
        #: by hash: how many it had (accepted), how many it did not (asked again or given back).
        self.resolved: Counter[str] = Counter()

    def retry(self, method: str, reason: str, count: int = 1) -> None:
        self.retried[(method, reason)] += count

    def give_up(self, method: str, reason: str, count: int = 1) -> None:
        self.gave_up[(method, reason)] += count

    @property
    def total(self) -> int:
        return sum(self.retried.values())

    def as_dict(self) -> dict[str, Any]:
        """Plain data: ``{"retried": {"method: reason": n}, "gave_up": {...}, "resolved": {...}}``."""
        return {
            "retried": {f"{method}: {reason}": n for (method, reason), n in sorted(self.retried.items())},
            "gave_up": {f"{method}: {reason}": n for (method, reason), n in sorted(self.gave_up.items())},
            "resolved": dict(sorted(self.resolved.items())),
        }

    def note(self) -> str | None:
        """One line for the run's notes (the caller prefixes it), or None when nothing was retried,
        given up or settled by hash."""
        if not self.retried and not self.gave_up and not self.resolved:
            return None
        by_method: dict[str, Counter[str]] = {}
        for (method, reason), count in self.retried.items():
            by_method.setdefault(method, Counter())[reason] += count
        parts = []
        for method in sorted(by_method, key=lambda name: -sum(by_method[name].values())):
            reasons = by_method[method]
            why = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common())
            parts.append(f"{method} {sum(reasons.values())} ({why})")
        line = f"{self.total} JSON-RPC call(s) asked again: " + ("; ".join(parts) or "none")
        if self.gave_up:
            given = ", ".join(
                f"{method}: {reason} {n}" for (method, reason), n in sorted(self.gave_up.items())
            )
            line += f"; given up after the retry bound: {given}"
        if self.resolved:
            line += "; outcome unknown, then asked by hash: " + ", ".join(
                f"{what} {n}" for what, n in sorted(self.resolved.items())
            )
        return line
