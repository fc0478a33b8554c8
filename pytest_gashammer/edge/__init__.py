"""The edge: the load generator that builds, signs, submits and tracks transactions."""

from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime, Progress, prepare_run

__all__ = ["EdgeAssignment", "EdgeRuntime", "Progress", "prepare_run"]
