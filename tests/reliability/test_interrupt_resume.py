"""SIGTERM during `moon-rl sft` / `moon-rl grpo` saves at the next step boundary, exits with the command
that resumes, and `--resume latest` retraces the uninterrupted run.

How: the CLI runs in this process (`cli` fixture); a patched `GracefulInterrupt.on_step_begin` sends
SIGTERM to this very process at the start of step k, so the real signal handler sets the flag mid-step.

Tolerance: logged metrics of every step (loss, nll / reward, contrastive loss, lengths, ...) must agree
within 1e-6 absolute (and 1e-6 relative), and the final adapter + embedding head + modules within 1e-6.
Same process, same CPU kernels: in practice the numbers are bit-identical; the tolerance only leaves room
for a BLAS that splits work differently between runs. Timing entries (step_time, train_runtime, ...) and
the end-of-training summary are not compared.

What resume has to restore for this to hold: optimizer and scheduler state, the torch/numpy/python RNG
(LoRA dropout in both trainers, rollout sampling in GRPO), the embedding head and modules (fusion,
residual), and the data position (the group-aware samplers replay the same order; SFT here crosses an
epoch boundary). The GRPO case uses num_iterations=2, so rollouts are reused for two steps: a SIGTERM
in the first step of such a cycle stops at the end of the cycle (TRL keeps the rollouts in memory, not in
the checkpoint), see moon_rl/trainers/interrupt.py. Limitation (documented there and in the README): a *periodic*
checkpoint (save_steps) inside a cycle resumes with freshly generated rollouts, not bit-identically.
A negative control shows the comparison is sensitive: resuming without the saved RNG state diverges.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import signal

import pytest
import torch
from safetensors.torch import load_file

from moon_rl.trainers.checkpoints import is_complete
from moon_rl.trainers.interrupt import INTERRUPTED_EXIT, GracefulInterrupt
from reliability_support import CUSTOM_REWARDS, SFT_CONFIG

TOL = dict(abs=1e-6, rel=1e-6)
NOT_COMPARED = ("step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss")


def sigterm_during_step(monkeypatch, step: int) -> None:
    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == step - 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(GracefulInterrupt, "on_step_begin", on_step_begin, raising=False)


def step_logs(out) -> dict[int, dict]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {h["step"]: {k: v for k, v in h.items() if k not in NOT_COMPARED} for h in history if "loss" in h}


def assert_same_logs(straight: dict[int, dict], resumed: dict[int, dict]) -> None:
    assert list(resumed) == list(straight)
    for step, want in straight.items():
        got = resumed[step]
        assert got.keys() == want.keys(), step
        for key, value in want.items():
            if isinstance(value, float) and math.isfinite(value):
                assert got[key] == pytest.approx(value, **TOL), f"step {step}: {key}"
            else:
                assert got[key] == value, f"step {step}: {key}"


def assert_same_weights(a, b, files=("adapter_model.safetensors", "moon_extras.safetensors")) -> None:
    for name in files:
        wa, wb = load_file(str(a / name)), load_file(str(b / name))
        assert wa.keys() == wb.keys() and wa, name
        for key in wa:
            torch.testing.assert_close(wb[key], wa[key], rtol=1e-6, atol=1e-6, msg=f"{name}: {key}")


def interrupt_then_resume(cli, monkeypatch, args, out, step):
    """Run `args --out out`, SIGTERM during `step`; return (interrupted result, resume command, resumed result)."""
    sigterm_during_step(monkeypatch, step)
    stopped = cli([*args, "--out", out])
    monkeypatch.undo()  # the patch and sys.argv: the resume below is a fresh command line
    assert stopped.exit_code == INTERRUPTED_EXIT, stopped.output
    lines = [line for line in stopped.output.splitlines() if line.startswith("interrupted at step ")]
    assert len(lines) == 1, stopped.output
    command = shlex.split(lines[0].split("resume with: ", 1)[1])
    assert command[0] == "moon-rl" and command[-2:] == ["--resume", "latest"]
    resumed = cli(command[1:])
    assert resumed.exit_code == 0, resumed.output
    return stopped, lines[0], resumed


# ---- SFT -------------------------------------------------------------------------------------------


@pytest.fixture
def sft_small_data(sft_text_dataset_dir, tmp_path):
    """8 rows, batch 4: two steps per epoch, so a 6-step run crosses two epoch boundaries."""
    from datasets import load_from_disk

    out = tmp_path / "data"
    load_from_disk(str(sft_text_dataset_dir)).select(range(8)).save_to_disk(str(out))
    return out


def test_sft_interrupted_and_resumed_matches_uninterrupted(cli, monkeypatch, tiny_model_dir, sft_small_data, tmp_path):
    args = [
        "sft", "--model", tiny_model_dir("qwen2"), "--data", sft_small_data, "--config", SFT_CONFIG,
        "--batch-size", "4", "--max-steps", "6", "--seed", "0",
        "--set", "max_length=128", "--set", "logging_steps=1", "--set", "report_to=none",
        "--set", "lora_dropout=0.1", "--set", "warmup_steps=2", "--set", "embedding_dim=32",
    ]  # fmt: skip
    straight = cli([*args, "--out", tmp_path / "a"])
    assert straight.exit_code == 0, straight.output

    out = tmp_path / "b"
    stopped, message, resumed = interrupt_then_resume(cli, monkeypatch, args, out, step=3)
    assert message.startswith("interrupted at step 3; resume with: moon-rl sft --model ")
    assert "received SIGTERM" in stopped.output
    assert is_complete(out / "checkpoint-3") and (out / "checkpoint-3" / "moon_extras.safetensors").is_file()
    assert f"resuming from {out / 'checkpoint-3'}" in resumed.output

    logs = step_logs(tmp_path / "a")
    assert len(logs) == 6 and all("nll" in h and "contrastive_loss" in h for h in logs.values())
    assert_same_logs(logs, step_logs(out))
    assert_same_weights(tmp_path / "a", out)


# ---- GRPO ------------------------------------------------------------------------------------------


def test_grpo_interrupted_and_resumed_matches_uninterrupted(cli, monkeypatch, tiny_model_dir, tmp_path):
    from grpo_support import grpo_dataset_dir

    args = [
        "grpo", "--model", tiny_model_dir("qwen2"), "--data", grpo_dataset_dir("text"),
        "--batch-size", "8", "--num-generations", "2", "--max-steps", "4", "--seed", "0",
        "--reward", f"{CUSTOM_REWARDS}:length_bonus", "--reward", "format",
        "--set", "max_completion_length=12", "--set", "logging_steps=1", "--set", "report_to=none",
        "--set", "learning_rate=1e-3", "--set", "lora_dropout=0.1", "--set", "num_iterations=2",
        "--set", "contrastive_weight=0.5", "--set", "pooling=fusion", "--set", "residual_enhancement=true",
        "--set", "embedding_dim=32",
    ]  # fmt: skip
    straight = cli([*args, "--out", tmp_path / "a"])
    assert straight.exit_code == 0, straight.output

    out = tmp_path / "b"
    # SIGTERM in step 1, the first of a two-step generation cycle: the run stops (and saves) after step 2.
    stopped, message, resumed = interrupt_then_resume(cli, monkeypatch, args, out, step=1)
    assert message.startswith("interrupted at step 2; resume with: moon-rl grpo --model ")
    assert "the end of step 2 (the end of this generation cycle)" in stopped.output
    assert is_complete(out / "checkpoint-2") and not (out / "checkpoint-1").exists()
    assert f"resuming from {out / 'checkpoint-2'}" in resumed.output

    logs = step_logs(tmp_path / "a")
    assert len(logs) == 4
    assert {"reward", "contrastive_loss", "fusion_gate/text", "residual_gate_norm/layer1"} <= logs[3].keys()
    assert len({h["reward"] for h in logs.values() if "reward" in h}) > 1, "rewards must vary, or sampling would not matter"
    assert_same_logs(logs, step_logs(out))
    assert_same_weights(tmp_path / "a", out)

    # Negative control: the same checkpoint without its RNG state samples other rollouts after the resume.
    control = tmp_path / "c"
    control.mkdir()
    shutil.copytree(out / "checkpoint-2", control / "checkpoint-2")
    (control / "checkpoint-2" / "rng_state.pth").unlink()
    again = cli([*args, "--out", control, "--resume", "latest"])
    assert again.exit_code == 0, again.output
    diverged = step_logs(control)
    assert [diverged[s]["loss"] for s in (1, 2)] == [logs[s]["loss"] for s in (1, 2)]  # from the checkpoint
    moved = [key for key in ("loss", "reward", "contrastive_loss") if diverged[3][key] != pytest.approx(logs[3][key], **TOL)]
    assert moved, "without the RNG state, step 3 must differ"


# ---- multi-process -----------------------------------------------------------------------------------


def _rank_stops(rank: int, store: str, results) -> None:
    import torch.distributed as dist
    from transformers import TrainerControl, TrainerState

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        callback = GracefulInterrupt(signals=())  # the flag is set by hand: no handler needed
        state = TrainerState()
        outcome = []
        for step, signalled_rank in ((1, None), (2, 0)):  # step 2: only rank 0 received the signal
            state.global_step = step
            if signalled_rank == rank:
                callback.received = signal.SIGTERM
            control = callback.on_step_end(None, state, TrainerControl())
            outcome.append((control.should_save, control.should_training_stop))
        results.put((rank, outcome))
    finally:
        dist.destroy_process_group()


def test_processes_stop_together(tmp_path):
    """The signal reaches processes at different moments; all of them must stop (and save) at the same
    step, or the ones still training would wait forever for the others in the next collective."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")  # no re-import in the children (OMP_NUM_THREADS=1 here)
    results = ctx.Queue()
    procs = [ctx.Process(target=_rank_stops, args=(rank, str(tmp_path / "store"), results)) for rank in (0, 1)]
    for proc in procs:
        proc.start()
    outcomes = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert outcomes == {0: [(False, False), (True, True)], 1: [(False, False), (True, True)]}


def test_second_ctrl_c_aborts_but_a_forwarded_duplicate_does_not(monkeypatch):
    """Launchers (torchrun) forward the terminal's Ctrl-C to workers that already got it: a repeat within a
    second is the same request; a later one is the user insisting, and aborts without saving."""
    import moon_rl.trainers.interrupt as interrupt
    from transformers import TrainerControl, TrainerState

    callback = GracefulInterrupt(signals=(signal.SIGINT,))
    callback.on_train_begin(None, TrainerState(), TrainerControl())
    try:
        now = [100.0]
        monkeypatch.setattr(interrupt.time, "monotonic", lambda: now[0])
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # the forwarded copy
        assert callback.received == signal.SIGINT
        now[0] += 5.0
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    finally:
        callback.restore()


def test_resume_command_replaces_resume_and_keeps_the_rest(monkeypatch):
    from moon_rl.trainers.interrupt import resume_command

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    argv = ["grpo", "--model", "runs/my model", "--resume", "runs/x/checkpoint-4", "--set", "beta=0.04", "--resume=latest"]
    assert resume_command(argv) == "moon-rl grpo --model 'runs/my model' --set beta=0.04 --resume latest"
    monkeypatch.setenv("WORLD_SIZE", "2")  # a worker of `--num-processes 2`, which the relaunch strips
    assert resume_command(["grpo", "--out", "o"]) == "moon-rl grpo --out o --num-processes 2 --resume latest"


def test_generation_cycle_and_misaligned_save_steps_warning(caplog):
    """GRPO's generation cycle in optimizer steps, and the warning for periodic saves inside a cycle."""
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState
    from transformers.trainer_utils import SaveStrategy

    from moon_rl.trainers.interrupt import cycle_steps, stop_step

    def grpo_args(spg, iters, accum, save_steps=500.0):
        return SimpleNamespace(steps_per_generation=spg, num_iterations=iters, gradient_accumulation_steps=accum,
                               save_strategy=SaveStrategy.STEPS, save_steps=save_steps)

    assert cycle_steps(None) == 1 and cycle_steps(SimpleNamespace(gradient_accumulation_steps=4)) == 1  # SFT
    assert cycle_steps(grpo_args(4, 1, 4)) == 1  # TRL's default: steps_per_generation = gradient accumulation
    assert cycle_steps(grpo_args(4, 1, 1)) == 4 and cycle_steps(grpo_args(2, 3, 2)) == 3
    assert [stop_step(grpo_args(1, 2, 1), k) for k in (1, 2, 3)] == [2, 2, 4]

    callback = GracefulInterrupt(signals=())
    with caplog.at_level("WARNING", logger="moon_rl.trainers.interrupt"):
        callback.on_train_begin(grpo_args(1, 2, 1, save_steps=3.0), TrainerState(), TrainerControl())
        callback.on_train_begin(grpo_args(1, 2, 1, save_steps=4.0), TrainerState(), TrainerControl())
    warnings = [r.getMessage() for r in caplog.records if r.name == "moon_rl.trainers.interrupt"]
    assert len(warnings) == 1 and "save_steps=3 is not a multiple of the generation cycle (2 steps" in warnings[0]


CHILD = """
import signal, sys, time
from pathlib import Path
out = Path(sys.argv[1])
def on_signal(signum, frame):
    time.sleep(0.5)  # longer than subprocess.run's 0.25 s grace: a 'checkpoint' being written
    out.write_text(signal.Signals(signum).name)
    sys.exit(75)
signal.signal(signal.SIGTERM, on_signal)
out.with_suffix('.ready').write_text('')
time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_launcher_parent_forwards_signals_and_waits_for_the_child(tmp_path, sig):
    """`--num-processes` re-runs the command under accelerate; a signal to that parent must reach the
    workers and the parent must wait while they save (subprocess.run would kill them 0.25 s after Ctrl-C)."""
    import subprocess
    import sys
    import time

    (tmp_path / "child.py").write_text(CHILD.replace("signal.SIGTERM, on_signal", f"signal.{sig.name}, on_signal"))
    done = tmp_path / "done.txt"
    parent = subprocess.Popen([sys.executable, "-c",
                               "import sys; from moon_rl.trainers.launch import run_child; "
                               f"sys.exit(run_child([sys.executable, {str(tmp_path / 'child.py')!r}, {str(done)!r}]))"])
    deadline = time.monotonic() + 60
    while not done.with_suffix(".ready").exists():
        assert time.monotonic() < deadline and parent.poll() is None, "child never started"
        time.sleep(0.05)
    parent.send_signal(sig)  # to the parent only, as a scheduler would
    assert parent.wait(timeout=30) == 75  # the child's exit code comes back
    assert done.read_text() == sig.name
