"""Telemetry: per-transaction columns and block records an edge collects and the hive merges."""

from pytest_gashammer.telemetry.records import NOT_YET, BlockRecord, EdgeReport, TxLog

__all__ = ["NOT_YET", "BlockRecord", "EdgeReport", "TxLog"]
