"""Paths and assertions shared by the reliability tests (not a test module)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SFT_CONFIG = ROOT / "configs" / "sft_tiny.yaml"
CUSTOM_REWARDS = ROOT / "tests" / "reward_fns" / "custom_rewards.py"  # length_bonus, broken_nan, broken_short
HOSTILE_REWARDS = HERE / "hostile_rewards.py"  # constant, always_raises


def tiny_sft_args(model, data, out, *extra) -> list:
    """`moon-rl sft` on the tiny text model, saving every step (the runs these tests kill and resume)."""
    return [
        "sft", "--model", model, "--data", data, "--out", out, "--config", SFT_CONFIG, "--batch-size", "4",
        "--set", "max_length=128", "--set", "report_to=none", "--set", "logging_steps=1", "--set", "save_steps=1",
        "--set", "embedding_dim=32", *extra,
    ]  # fmt: skip


# ---- the four assertions of a refused hostile input ------------------------------------------------------


def checksums(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under `roots` (symlinks recorded by target, never followed out of the tree)."""
    sums: dict[str, str] = {}
    for root in roots:
        root = Path(root)
        if root.is_file():
            sums[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
            continue
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                sums[str(path)] = "-> " + os.readlink(path)
            elif path.is_file():
                sums[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


def refused(cli, args: list, inputs: list[Path], names: list[str]) -> str:
    """Run `moon-rl ARGS`; it must fail cleanly (non-zero exit, no traceback) with exactly one `error:` line naming
    every one of `names`, and every file under `inputs` byte-identical afterwards. Returns the error line."""
    before = checksums(*inputs)
    result = cli(args)
    output = result.output
    assert result.exit_code not in (0, None), output
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, output
    line = lines[0]
    for name in names:
        assert str(name) in line, f"{name!r} not named in: {line}"
    assert checksums(*inputs) == before, "an input changed"
    return line
