"""CPU pinning shared by the benchmark scripts (run as `python benchmarks/NAME.py`)."""

import os


def pin_to_cores(cores):
    """Restrict this process to the first `cores` CPUs it may run on, before TF starts."""
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cores < 1 or (available and cores > len(available)):
        raise SystemExit(f"--cores must be in [1, {len(available)}], got {cores}")
    if available:
        os.sched_setaffinity(0, available[:cores])
