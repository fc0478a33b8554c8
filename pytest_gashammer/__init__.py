"""pytest-gashammer: gas-rate load tests and correctness checks for EVM rollups, as pytest tests.

The public surface is small on purpose: the ``gashammer`` marker, the ``devnet`` and ``hammer``
fixtures, and the result types re-exported here. Result types load lazily so that importing the
package (as pytest does for every session) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_gashammer._version import __version__

if TYPE_CHECKING:
    from pytest_gashammer.results import LatencyStats, RunResult, Verdict

__all__ = ["LatencyStats", "RunResult", "Verdict", "__version__"]


def __getattr__(name: str) -> Any:
    if name in {"LatencyStats", "RunResult", "Verdict"}:
        from pytest_gashammer import results

        return getattr(results, name)
    raise AttributeError(f"module 'pytest_gashammer' has no attribute {name!r}")
