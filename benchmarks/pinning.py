"""CPU pinning for the benchmarks: the node on one CPU, the load generator on the other.

On a two-core machine a node and a generator left to the scheduler share both cores, so a ratio of
two runs measures how they happened to be placed as much as the generator. Pinned with ``taskset``
(the node, every thread) and ``sched_setaffinity`` (the generator, before its threads start: they
inherit it), each has a core of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess

NODE_CPU = 0
GENERATOR_CPU = 1


def pinning_problem(cpu_count: int | None, taskset: str | None) -> str | None:
    """Why this machine cannot pin the node and the generator apart, or None when it can."""
    if (cpu_count or 0) < 2:
        return f"{cpu_count or 'unknown'} CPU(s): need 2 to pin the node and the generator apart"
    if taskset is None:
        return "taskset not found (util-linux)"
    return None


def pin_self(cpu: int = GENERATOR_CPU) -> str | None:
    """Pin this process to ``cpu`` (call it before any thread starts); why not, or None when pinned."""
    problem = pinning_problem(os.cpu_count(), shutil.which("taskset"))
    if problem is None:
        os.sched_setaffinity(0, {cpu})
    return problem


def pin_to(pid: int, cpu: int = NODE_CPU) -> str:
    """Move every thread of ``pid`` to ``cpu``; what happened, in words."""
    done = subprocess.run(
        ["taskset", "-a", "-cp", str(cpu), str(pid)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return f"pinning pid {pid} failed: {(done.stderr or done.stdout).strip()}"
    try:
        affinity = sorted(os.sched_getaffinity(pid))
    except OSError as exc:
        return f"pid {pid} pinned to CPU {cpu} (affinity not readable: {exc})"
    return f"pid {pid} on CPU {','.join(map(str, affinity))} (all threads)"
