"""The edge: the load generator that builds, signs, submits and tracks transactions."""

from pytest_gashammer.edge.preparation import RunPreparation, prepare_run
from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime, Progress

__all__ = ["EdgeAssignment", "EdgeRuntime", "Progress", "RunPreparation", "prepare_run"]
