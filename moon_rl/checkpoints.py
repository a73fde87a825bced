"""Checkpoints that are never half-used: a checkpoint counts only once it is complete.

HF's Trainer writes `checkpoint-N/` file by file; a process killed mid-write (SIGKILL, pre-emption)
leaves a folder that looks like a checkpoint but is not. moon-rl trainers write a marker file as the
*last* step of every checkpoint save (`mark_complete`), and `--resume` only ever picks the newest
folder with the marker (`latest_complete_checkpoint`). Rotation of old checkpoints happens in HF after
the new save returns, so the previous good checkpoint is still there when a save is interrupted.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from moon_rl.errors import MoonError

MARKER = "moon_rl_complete.json"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(checkpoint_dir: str | Path, step: int) -> None:
    path = Path(checkpoint_dir) / MARKER
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"global_step": step, "time": time.time()}) + "\n", encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)


def is_complete(checkpoint_dir: str | Path) -> bool:
    return (Path(checkpoint_dir) / MARKER).is_file()


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if p.is_dir() and (m := _CKPT.match(p.name))]
    return sorted(found)


def latest_complete_checkpoint(run_dir: str | Path) -> Path | None:
    for _step, path in reversed(list_checkpoints(run_dir)):
        if is_complete(path):
            return path
    return None


def resolve_resume(run_dir: str | Path, resume: str | bool | None) -> str | None:
    """`--resume` (True: latest complete checkpoint in run_dir; a path: that checkpoint) -> path or None."""
    if not resume:
        return None
    if isinstance(resume, str) and resume not in ("true", "latest"):
        path = Path(resume)
        if not path.is_dir():
            raise MoonError(f"--resume {resume}: no such checkpoint folder")
        if not is_complete(path):
            raise MoonError(f"--resume {resume}: checkpoint is incomplete (no {MARKER}; it was interrupted while saving)")
        return str(path)
    latest = latest_complete_checkpoint(run_dir)
    if latest is None:
        partial = [p.name for _, p in list_checkpoints(run_dir)]
        hint = f" (found only incomplete ones: {partial})" if partial else ""
        raise MoonError(f"--resume: no complete checkpoint in {run_dir}{hint}; start without --resume")
    return str(latest)
