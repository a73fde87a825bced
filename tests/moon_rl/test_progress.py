"""The training terminal: transformers' dict-printing callbacks swapped for a bar with the headline figures, and
every log kept in full in OUTPUT_DIR/logs.jsonl (moon_rl/trainers/progress.py)."""

import doctest
import json
from types import SimpleNamespace

from transformers.trainer_callback import CallbackHandler, PrinterCallback, ProgressCallback

from moon_rl.trainers import progress
from moon_rl.trainers.progress import CompactPrinter, CompactProgress, JsonlLog, headline, use_compact_logging


def test_doctests():
    assert doctest.testmod(progress).failed == 0


def _trainer(callbacks):
    return SimpleNamespace(callback_handler=CallbackHandler(callbacks, None, None, None, None))


def test_dict_printers_are_swapped_and_the_jsonl_log_added():
    trainer = _trainer([ProgressCallback, PrinterCallback])
    use_compact_logging(trainer)
    kinds = [type(c) for c in trainer.callback_handler.callbacks]
    assert ProgressCallback not in kinds and PrinterCallback not in kinds
    assert {CompactProgress, CompactPrinter, JsonlLog} <= set(kinds)


class _Bar:
    def __init__(self):
        self.postfix, self.written = None, []

    def set_postfix(self, figures, refresh=True):
        self.postfix = figures

    def write(self, text):
        self.written.append(text)


def test_a_log_becomes_the_bar_postfix_not_a_printed_dict(tmp_path, capsys):
    state = SimpleNamespace(is_world_process_zero=True, is_local_process_zero=True, global_step=7)
    args = SimpleNamespace(output_dir=str(tmp_path))
    logs = {"loss": 1.23456, "grad_norm": 2.0, "reward": 0.5, "frac_reward_zero_std": 0.25, "entropy": 1.9}
    cb = CompactProgress()
    cb.training_bar = _Bar()
    cb.on_log(args, state, None, logs=dict(logs))
    assert cb.training_bar.written == []
    assert cb.training_bar.postfix == {"loss": "1.235", "reward": "0.5", "zero-spread groups": "0.25"}

    CompactPrinter().on_log(args, state, None, logs=dict(logs))
    assert capsys.readouterr().out == "step 7: loss 1.235 | reward 0.5 | zero-spread groups 0.25\n"

    JsonlLog().on_log(args, state, None, logs=dict(logs))
    JsonlLog().on_log(args, SimpleNamespace(**{**vars(state), "global_step": 8}), None, logs={"loss": float("nan")})
    lines = [json.loads(line) for line in (tmp_path / "logs.jsonl").read_text().splitlines()]
    assert lines == [{"step": 7, **logs}, {"step": 8, "loss": "nan"}]


def test_headline_keeps_evaluation_r1():
    assert headline({"eval_R@1": 0.5, "eval_loss": 0.25}) == {"eval loss": "0.25", "R@1": "0.5"}
