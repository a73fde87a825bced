"""What a training run shows on the terminal and what it keeps on disk.

transformers' `ProgressCallback` writes every log under the bar as a raw dict (`{'loss': '1.086', 'grad_norm': ...}`,
about 30 keys for GRPO) and `PrinterCallback` (tqdm off) prints the same dict. `moon-rl sft` / `grpo` swap them
(`use_compact_logging`) for:

- `CompactProgress`: the same bar, with the figures that matter as its postfix (`HEADLINE`): loss, contrastive
  loss, reward and its spread, in-batch R@1, R@1 when evaluated;
- `CompactPrinter` (tqdm off, e.g. `--set disable_tqdm=true` in a log file): one short line a log with those figures;
- `JsonlLog`: every log in full, one JSON object a line with its step, appended to `OUTPUT_DIR/logs.jsonl` as it
  is logged (main process), so nothing logged is lost on a crash. `trainer_state.json` keeps the same history at
  each checkpoint, as TRL's runs do.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

LOG_FILE = "logs.jsonl"

# (log key, short label) in display order; a log shows those it carries.
HEADLINE = (
    ("loss", "loss"),
    ("contrastive_loss", "contrastive"),
    ("reward", "reward"),
    ("reward_std", "reward std"),
    ("frac_reward_zero_std", "zero-spread groups"),
    ("retrieval_accuracy", "in-batch R@1"),
    ("eval_loss", "eval loss"),
    ("train_loss", "mean loss"),
)


def headline(logs: dict[str, Any]) -> dict[str, str]:
    """The figures of one log worth a glance, formatted; keys ending in R@1 / recall@1 (evaluation) included.

    >>> headline({"loss": 1.08642, "grad_norm": 3.0, "contrastive_loss": 0.5, "eval_R@1": 0.71})
    {'loss': '1.086', 'contrastive': '0.5', 'R@1': '0.71'}
    """
    out = {label: _fmt(logs[key]) for key, label in HEADLINE if key in logs}
    for key, value in logs.items():
        if key.endswith(("R@1", "recall@1")) and key not in dict(HEADLINE):
            out["R@1"] = _fmt(value)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)


def headline_line(step: int, logs: dict[str, Any]) -> str:
    """One printed line: `step 10: loss 1.086 | contrastive 0.5`."""
    return f"step {step}: " + " | ".join(f"{k} {v}" for k, v in headline(logs).items())


class CompactProgress(ProgressCallback):
    """ProgressCallback whose logs become the bar's postfix instead of a dict written under it."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs:
            figures = headline(logs)
            if figures:
                self.training_bar.set_postfix(figures, refresh=True)


class CompactPrinter(TrainerCallback):
    """PrinterCallback's place when tqdm is off: one short line a log."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_local_process_zero and logs and headline(logs):
            print(headline_line(state.global_step, logs), flush=True)


class JsonlLog(TrainerCallback):
    """Every log, in full, appended to OUTPUT_DIR/logs.jsonl (main process), flushed as written."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or not args.output_dir:
            return
        path = Path(args.output_dir) / LOG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"step": state.global_step, **{k: _jsonable(v) for k, v in logs.items()}}
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def use_compact_logging(trainer) -> None:
    """Swap transformers' dict-printing callbacks for the compact ones and add the JSONL log (see module doc)."""
    handler = trainer.callback_handler
    for callback in list(handler.callbacks):
        if type(callback) is ProgressCallback:
            handler.remove_callback(callback)
            handler.add_callback(CompactProgress(max_str_len=callback.max_str_len))
        elif type(callback) is PrinterCallback:
            handler.remove_callback(callback)
            handler.add_callback(CompactPrinter())
    handler.add_callback(JsonlLog())
