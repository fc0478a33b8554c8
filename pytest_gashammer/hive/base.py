"""What every hive offers the fixtures: :class:`Hive`, and the progress line a run reports to.

Three objects implement it: :class:`~pytest_gashammer.hive.local.LocalHive` (one edge in the
test's process), :class:`~pytest_gashammer.hive.controller.HiveController` (the edges of an xdist
session or of ``--gashammer-edges`` gateways, in the controller) and
:class:`~pytest_gashammer.hive.worker.HiveClient` (an xdist worker's view of the controller's hive).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pytest_gashammer.results import RunResult
    from pytest_gashammer.scenario.spec import ScenarioPlan
    from pytest_gashammer.telemetry.records import Progress


class ProgressSink(Protocol):
    """The live progress line: ``update`` while a run goes on, ``finish`` once at its end."""

    def update(self, plan: ScenarioPlan, progress: Progress) -> None: ...

    def finish(self) -> None: ...


@runtime_checkable
class Hive(Protocol):
    """Runs plans, one at a time, and answers with their merged results."""

    def run(self, plan: ScenarioPlan, *, progress: ProgressSink | None = None) -> RunResult:
        """Run ``plan`` to its end; a run that cannot happen raises GashammerError."""
        ...
