"""The `machine` record every results file carries (not a benchmark): what ran it, and how busy it was.

Benchmarks run as `python benchmarks/NAME.py`, so this folder is on sys.path and `from machine import
machine_info` works from each of them.
"""

from __future__ import annotations

import os
import platform


def machine_info(load_before: float) -> dict:
    """`load_before`: the 1-minute load average read before the work started (other jobs slow the run)."""
    import torch

    return {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_1min_before": round(load_before, 2),
        "torch": torch.__version__,
    }
