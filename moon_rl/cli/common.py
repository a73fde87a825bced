"""Small helpers every command shares: clean error reporting and common option parsing."""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from moon_rl.errors import USER_ERRORS

F = TypeVar("F", bound=Callable[..., Any])
MACHINE_ERRORS = {
    errno.ENOSPC: "the disk is full: free space and run the command again",
    errno.EDQUOT: "the disk quota is used up: free space and run the command again",
    errno.EACCES: "check the permissions of that path (or choose another one)",
    errno.EPERM: "check the permissions of that path (or choose another one)",
    errno.EROFS: "that file system is read-only: choose a path on a writable one",
}


def _close_progress_bars() -> None:
    """An error raised inside a tqdm loop leaves its bar open, with no newline after it: close every open bar
    so that `error:` starts a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ()) or ()):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot redraw must not hide the error
            pass


def fail(message: str, code: int = 2) -> None:
    _close_progress_bars()
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_guarded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run `fn`; a user error (`USER_ERRORS`: MoonError, DataPrepError, RewardError) or a missing file becomes
    `error: ...` on stderr and exit status 2."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return fn(*args, **kwargs)
    except USER_ERRORS as err:
        fail(str(err))
    except FileNotFoundError as err:
        fail(str(err))
    except OSError as err:  # a full disk or a permission error anywhere outside the guarded saves
        if err.errno not in MACHINE_ERRORS:
            raise
        fail(f"{err.filename or 'writing'}: {err.strerror}; {MACHINE_ERRORS[err.errno]}")
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130)


def check_training_output(out: str | Path, data: str | Path, model_args: Any, overwrite_output: bool = False) -> None:
    """`sft` / `grpo --out`: not a file, and not the --data or --model folder, inside one or holding one
    (a run writes checkpoints and final weights into it); a non-empty folder only when it holds an earlier
    moon-rl output (`--resume latest`, a re-run) or `--overwrite-output` is given."""
    from moon_rl.file_checks import check_fresh_output, check_output

    check_output(out, {"--data": data, "--model": model_args.model, "--base-model": model_args.base_model})
    check_fresh_output(out, allow=overwrite_output)


OVERWRITE_OUTPUT_HELP = (
    "Write into a non-empty --out that holds no earlier moon-rl output (files with the names moon-rl writes are "
    "replaced; others stay). Without it such a folder is refused."
)


def guarded(fn: F) -> F:
    """Decorator form of `run_guarded` for typer command functions."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return run_guarded(fn, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def echo_err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
