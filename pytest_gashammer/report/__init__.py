"""Reports: the terminal's live progress line and per-run summaries."""

from pytest_gashammer.report.terminal import LiveProgress, RunSummaries, format_run_summary

__all__ = ["LiveProgress", "RunSummaries", "format_run_summary"]
