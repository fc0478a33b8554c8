"""The oracle: invariants over what the edges saw, turned into verdicts."""

from pytest_gashammer.oracle.invariants import BASIC_INVARIANTS, evaluate

__all__ = ["BASIC_INVARIANTS", "evaluate"]
