"""Regression gating: named baselines in the Parquet store and criterion-style comparisons of runs.

``thresholds`` (the metrics and ``--gashammer-compare-fail``; imports nothing heavy), ``stats``
(the seeded bootstrap of a relative change), ``samples`` (a stored run's per-second samples),
``baseline`` (named baselines: which stored runs they are), ``compare`` (comparability, the
comparison of two runs, its table and JSON). See docs/user-guide.md, "Capacity and regression in CI".
"""
