"""The hive: control plane, run orchestration and results."""

from pytest_gashammer.results import EdgeSummary, Latency, LatencyStats, RunResult, Verdict

__all__ = ["EdgeSummary", "Latency", "LatencyStats", "RunResult", "Verdict"]
