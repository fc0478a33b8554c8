"""Named baselines: which stored runs of a Parquet store a name stands for.

A baseline is a small JSON file, ``DIR/baselines/NAME.json``, beside the telemetry tables: the
runs' ids with their test ids and scenarios, and where they came from (git commit, host, plugin
and node versions; each run's own ``runs`` row carries the same). The runs themselves stay where
they are in the store, so a baseline costs nothing to keep and the report can still draw them.
Saving a name again replaces it (a branch's newest baseline wins).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_gashammer.compare.thresholds import baseline_name_problem
from pytest_gashammer.errors import ConfigError
from pytest_gashammer.telemetry.parquet import load

BASELINES = "baselines"


def baseline_path(directory: str | os.PathLike[str], name: str) -> Path:
    problem = baseline_name_problem(name)
    if problem is not None:
        raise ConfigError(problem)
    return Path(directory) / BASELINES / f"{name}.json"


def save_baseline(directory: str | os.PathLike[str], name: str, run_ids: Sequence[str]) -> tuple[Path, int]:
    """Store the runs of ``run_ids`` that finished as baseline ``name``; returns its file and how
    many runs it holds (a run that failed or was interrupted has nothing to compare with)."""
    path = baseline_path(directory, name)
    tables = load(directory, run_ids=list(run_ids), tables=("runs",))
    rows = [row for row in tables.runs.to_pylist() if row["status"] == "finished"]
    rows.sort(key=lambda row: (row["started_at"], row["run_id"]))
    first = rows[0] if rows else {}
    document = {
        "name": name,
        "saved_unix": time.time(),
        "git_commit": first.get("git_commit"),
        "host": first.get("host"),
        "plugin_version": first.get("plugin_version"),
        "node_version": first.get("node_version"),
        "devnet_kind": first.get("devnet_kind"),
        "runs": [
            {
                "run_id": row["run_id"],
                "test_nodeid": row["test_nodeid"],
                "scenario": row["scenario"],
                "git_commit": row["git_commit"],
                "node_version": row["node_version"],
            }
            for row in rows
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(temporary, path)
    return path, len(rows)


def baseline_names(directory: str | os.PathLike[str]) -> list[str]:
    folder = Path(directory) / BASELINES
    return sorted(path.stem for path in folder.glob("*.json")) if folder.is_dir() else []


def read_baseline(directory: str | os.PathLike[str], name: str) -> dict[str, Any]:
    """The baseline document; a missing one is a :class:`ConfigError` naming the ones there are."""
    path = baseline_path(directory, name)
    if not path.is_file():
        known = baseline_names(directory)
        have = f"it has {', '.join(known)}" if known else "it has none"
        raise ConfigError(
            f"no baseline {name!r} in {directory} ({have}); save one with --gashammer-save {name}"
        )
    try:
        document = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(
            f"{path} is not a baseline file ({exc}); save it again with --gashammer-save"
        ) from None
    return dict(document)


def baseline_runs(directory: str | os.PathLike[str], name: str) -> list[dict[str, Any]]:
    """The ``runs`` rows of baseline ``name`` still in the store, in the order they started."""
    document = read_baseline(directory, name)
    run_ids = [entry["run_id"] for entry in document.get("runs", ())]
    if not run_ids:
        return []
    rows = load(directory, run_ids=run_ids, tables=("runs",)).runs.to_pylist()
    rows.sort(key=lambda row: (row["started_at"], row["run_id"]))
    return rows
