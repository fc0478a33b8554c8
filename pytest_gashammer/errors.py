"""Errors that reach the user as one line naming the problem and the fix."""

from __future__ import annotations


class GashammerError(Exception):
    """A problem the user can fix. ``str(err)`` is a complete one-line message."""


class ConfigError(GashammerError):
    """A marker argument, option or scenario value is invalid."""


class DevnetError(GashammerError):
    """The devnet could not be started, reached or used."""


class FundingError(GashammerError):
    """The funder cannot pay for the run."""
