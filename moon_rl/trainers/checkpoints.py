"""Checkpoints that are never half-used: a checkpoint counts only once it is complete.

HF's Trainer writes `checkpoint-N/` file by file; a process killed mid-write (SIGKILL, pre-emption)
leaves a folder that looks like a checkpoint but is not. moon-rl trainers write a marker file as the
*last* step of every checkpoint save (`mark_complete`), and `--resume` only ever picks the newest
folder with the marker (`latest_complete_checkpoint`). Where HF would delete old checkpoints before the
new one is marked (`save_total_limit`), `MoonTrainerMixin` rotates them itself, after the marker, with
`rotate_checkpoints`: so whatever instant the process dies at, the previous good checkpoint is still there.

"Newest" is the checkpoint completed last (the time stored in its marker, then the step): after an
explicit `--resume OUT/checkpoint-5` over a run that had reached checkpoint-9, the new checkpoint-6
is newer than the stale checkpoint-9 of the abandoned run.

The final artifacts written into the run folder itself get the same guarantee the other way round: a
`moon_rl_saving` file exists while they are written (`begin_final_save` / `end_final_save`), and loaders
fall back to the newest complete checkpoint while it is there.

`replace_dir(new, target)` swaps a finished folder into place in one `renameat2(RENAME_EXCHANGE)`
call where the OS supports it (Linux), so an export replaced with `--force` is never missing.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from moon_rl.errors import USER_ERRORS, MoonError

MARKER = "moon_rl_complete.json"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(checkpoint_dir: str | Path, step: int) -> None:
    path = Path(checkpoint_dir) / MARKER
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"global_step": step, "time": time.time()}) + "\n", encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)


def clear_complete(checkpoint_dir: str | Path) -> None:
    """Remove the marker before a checkpoint folder is (re)written: a marker left by an earlier run must
    not vouch for files that are about to be overwritten."""
    (Path(checkpoint_dir) / MARKER).unlink(missing_ok=True)


def is_complete(checkpoint_dir: str | Path) -> bool:
    return (Path(checkpoint_dir) / MARKER).is_file()


SAVING = "moon_rl_saving"  # present while the final artifacts of a run are being written into its folder


def begin_final_save(run_dir: str | Path) -> None:
    """Mark `run_dir` as being written: until `end_final_save`, its top-level model files may be a mix of
    half-written new files and stale ones from an earlier run, and loaders must not trust them."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / SAVING).write_text("the final save of this run did not finish; its checkpoints are intact\n", encoding="utf-8")


def end_final_save(run_dir: str | Path) -> None:
    (Path(run_dir) / SAVING).unlink(missing_ok=True)


def final_save_unfinished(run_dir: str | Path) -> bool:
    return (Path(run_dir) / SAVING).is_file()


def completed_at(checkpoint_dir: str | Path) -> float:
    """When the checkpoint was marked complete (marker time; file mtime for a marker without one)."""
    path = Path(checkpoint_dir) / MARKER
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["time"])
    except (OSError, ValueError, KeyError, TypeError):
        return path.stat().st_mtime if path.exists() else 0.0


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if p.is_dir() and (m := _CKPT.match(p.name))]
    return sorted(found)


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (by completion time, then step)."""
    done = [(completed_at(p), step, p) for step, p in list_checkpoints(run_dir) if is_complete(p)]
    return [p for _, _, p in sorted(done)]


def latest_complete_checkpoint(run_dir: str | Path) -> Path | None:
    done = complete_checkpoints(run_dir)
    return done[-1] if done else None


def rotate_checkpoints(run_dir: str | Path, limit: int | None, keep: str | Path | None = None) -> list[Path]:
    """Delete the oldest *complete* checkpoints beyond `limit` (HF's `save_total_limit`), never the newest
    one nor `keep` (the best checkpoint). Incomplete folders are neither counted nor deleted here: they are
    never resumed from, and a resumed run overwrites them when it reaches their step. Returns what was deleted."""
    if limit is None or limit <= 0:
        return []
    done = complete_checkpoints(run_dir)
    protected = {Path(keep).resolve()} if keep else set()
    excess = len(done) - limit
    deleted = []
    for path in done[:-1]:
        if excess <= 0:
            break
        if path.resolve() in protected:
            continue
        shutil.rmtree(path, ignore_errors=True)
        deleted.append(path)
        excess -= 1
    return deleted


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


# HF's resume state: pickle-based, read by transformers with torch.load(weights_only=True).
HF_RESUME_FILES = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "scaler.pt")


def check_resume_files(checkpoint_dir: str | Path | None) -> None:
    """Before resuming (the CLI calls it on what `resolve_resume` picked): the checkpoint's safetensors headers read,
    and HF's resume files are torch's zip format and load with `weights_only=True` as transformers will load them
    (`moon_rl.file_checks.check_torch_file`), so a corrupt, swapped or code-running file is one line naming it and
    the way out, not a raw unpickling error."""
    from moon_rl.file_checks import check_safetensors, check_torch_file

    if checkpoint_dir is None:
        return
    checkpoint_dir = Path(checkpoint_dir)
    for file in sorted(checkpoint_dir.glob("*.safetensors")):
        check_safetensors(file)
    for name in HF_RESUME_FILES:
        check_torch_file(checkpoint_dir / name, numpy_ok=name == "rng_state.pth")
    for file in sorted(checkpoint_dir.glob("rng_state_*.pth")):  # one per process in a multi-process run
        check_torch_file(file, numpy_ok=True)


# ---- replacing a folder in one step -----------------------------------------------------------------

_RENAME_EXCHANGE = 2  # linux/fs.h


def exchange_dirs(a: str | Path, b: str | Path) -> bool:
    """Atomically swap two existing paths (Linux `renameat2(RENAME_EXCHANGE)`). False when unsupported
    (other OS, old libc/kernel, or a file system without it); nothing has changed then."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), _RENAME_EXCHANGE)
    if result == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not supported here
        return False
    raise OSError(errno, os.strerror(errno), str(a))


def replace_dir(new: str | Path, target: str | Path) -> None:
    """Put the finished folder `new` at `target` (same file system), replacing what is there.

    An existing `target` is swapped out atomically where `exchange_dirs` works, so a crash at any instant
    leaves either the old or the new folder at `target`. Elsewhere it is renamed aside first (a crash
    between the two renames leaves the old folder as `.NAME.old-PID` next to it). The old one is deleted last.
    """
    new, target = Path(new), Path(target)
    if not target.exists():
        new.rename(target)
        return
    if not any(target.iterdir()):
        target.rmdir()
        new.rename(target)
        return
    if exchange_dirs(new, target):
        shutil.rmtree(new, ignore_errors=True)  # `new` now holds the old folder
        return
    backup = target.parent / f".{target.name}.old-{os.getpid()}"
    target.rename(backup)
    try:
        new.rename(target)
    except OSError:
        backup.rename(target)
        raise
    shutil.rmtree(backup, ignore_errors=True)


# ---- saves that fail on the machine ---------------------------------------------------------------


class save_errors:  # noqa: N801 - used as `with save_errors(...)`, like contextlib's lower-case managers
    """`with save_errors(folder, run_dir): save(...)`: a full disk, a quota or a permission error becomes one
    `MoonError` naming the path and the newest complete checkpoint (`moon_rl.file_checks.save_failure`); the
    half-written folder stays unmarked, so `--resume` never picks it. Other errors pass through unchanged."""

    def __init__(self, path: str | Path, run_dir: str | Path | None = None):
        self.path, self.run_dir = path, run_dir

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, err, tb) -> bool:
        if err is None or not isinstance(err, Exception) or isinstance(err, USER_ERRORS):
            return False
        from moon_rl.file_checks import save_failure

        failure = save_failure(err, self.path, self.run_dir)
        if failure is not None:
            raise failure from None
        return False
