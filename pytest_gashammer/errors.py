"""Errors that reach the user as one line naming the problem and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GashammerError(Exception):
    """A problem the user can fix. ``str(err)`` is a complete one-line message."""


class ConfigError(GashammerError):
    """A marker argument, option or scenario value is invalid."""


class DevnetError(GashammerError):
    """The devnet could not be started, reached or used."""


class FundingError(GashammerError):
    """The funder cannot pay for the run."""


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` with the known name closest to a mistyped ``name``, or ``""``."""
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
