"""`benchmarks/results/ratios.json`: one row per speed/scale figure of the issue-18 table, each a ratio
against a baseline measured side by side in the same run. Scripts call `record(...)`; rows are merged by
`figure`, so each script rewrites only its own rows and a re-run replaces them.

Row: {"figure", "ratio", "target", "direction" ("<=" or ">="), "command", "met", ...extra details}.
"""

from __future__ import annotations

from pathlib import Path

from jsonfile import read_json, write_json

PATH = Path(__file__).resolve().parent / "results" / "ratios.json"


def met(ratio: float, target: float, direction: str) -> bool:
    if direction not in ("<=", ">="):
        raise ValueError(f"direction must be '<=' or '>=', got {direction!r}")
    return ratio <= target if direction == "<=" else ratio >= target


def record(figure: str, ratio: float, target: float, direction: str, command: str, path: Path = PATH, **details) -> dict:
    """Write (or replace) the row named `figure`; returns it. Atomic: a crash never leaves half a file."""
    row = {"figure": figure, "ratio": round(float(ratio), 4), "target": target, "direction": direction,
           "command": command, "met": met(float(ratio), target, direction), **details}
    rows = [r for r in read_json(path, empty=[]) if r.get("figure") != figure] + [row]
    write_json(path, rows)
    return row
