"""Side-by-side timing helpers shared by the speed benchmarks (not a benchmark itself).

Several contenders (trainers, encoders) take turns on the same inputs, one turn each per step, in one process,
so that a load spike on this shared machine hits them all alike; a figure is the median over steps of the paired
ratio (contender time / baseline time at the same step). The order of the turns is reversed every other step,
so no contender always runs just after the same neighbour (caches, allocator state, thermal drift).
`benchmarks/grpo_speed.py` showed the approach; its `one_step` (one optimizer step as `Trainer` runs it) now
lives here. Each turn's wall time and CPU time are both kept (see `take_turns`). Results files are updated one
entry at a time (`update_results`), so a long run resumes.
"""

from __future__ import annotations

import copy
import ctypes
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from jsonfile import read_json, write_json


def threads_and_command(script: str) -> str:
    """Set torch's threads from OMP_NUM_THREADS (1 by default) and return the command line that reproduces
    this run, as a results file records it."""
    import sys

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    return "OMP_NUM_THREADS=%d python benchmarks/%s %s" % (torch.get_num_threads(), script, " ".join(sys.argv[1:]))


def ready_for_steps(trainer, max_steps: int):
    """What `Trainer.train` sets up before its first step (activation checkpointing, optimizer, schedule, train
    mode), so that `one_step` can drive the trainer directly on inputs chosen by the benchmark.

    Activation checkpointing is switched on inside `Trainer.train` (transformers 5.24), not at construction:
    a benchmark that skips `train()` must do it itself, as here, with the same keyword handling."""
    args = trainer.args
    if args.activation_checkpointing:
        kwargs = dict(args.activation_checkpointing_kwargs or {})
        every_n_layers, offload = kwargs.pop("every_n_layers", 1), kwargs.pop("offload", False)
        trainer.model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs or None, every_n_layers=every_n_layers, offload=offload)
    trainer.create_optimizer_and_scheduler(num_training_steps=max_steps)
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.train()
    return trainer


def one_step(trainer, inputs, num_items_in_batch=None) -> float:
    """One optimizer step as Trainer's loop runs it (gradient accumulation 1) on this batch; its seconds.
    Gradient clipping included: `Trainer._inner_training_loop` clips at `max_grad_norm` between the backward
    (`training_step`) and the optimizer step, and a loop without it trains differently (more so late in a run)."""
    inputs = copy.deepcopy(inputs)
    start = time.perf_counter()
    trainer.training_step(trainer.model, inputs, num_items_in_batch)
    if trainer.args.max_grad_norm is not None and trainer.args.max_grad_norm > 0:
        trainer._clip_grad_norm(trainer.model)
    trainer.optimizer.step()
    trainer.lr_scheduler.step()
    trainer.optimizer.zero_grad()
    return time.perf_counter() - start


def take_turns(turns: dict[str, Callable[[int], object]], steps: int, warmup: int, label: str = "") -> dict[str, dict[str, list[float]]]:
    """Call `turns[name](step)` for every name at every step; per name, the seconds of the steps after `warmup`:
    {"wall": {name: [...]}, "cpu": {name: [...]}}. Wall time is what a user waits; the process's CPU time
    (`time.process_time`, all its threads) leaves out the time other jobs on a busy machine took the cores from it."""
    times: dict[str, dict[str, list[float]]] = {"wall": {name: [] for name in turns}, "cpu": {name: [] for name in turns}}
    names = list(turns)
    for step in range(warmup + steps):
        order = names if step % 2 == 0 else names[::-1]
        took = {}
        for name in order:
            wall, cpu = time.perf_counter(), time.process_time()
            turns[name](step)
            took[name] = (time.perf_counter() - wall, time.process_time() - cpu)
            release_freed_memory()  # untimed: the next contender starts without this one's freed heap
        if step >= warmup:
            for name in names:
                times["wall"][name].append(took[name][0])
                times["cpu"][name].append(took[name][1])
        tag = "warm-up" if step < warmup else "timed"
        print(f"{label}step {step + 1}/{warmup + steps} ({tag}), wall/cpu s: " + ", ".join(f"{n} {took[n][0]:.2f}/{took[n][1]:.2f}" for n in names), flush=True)
    return times


def release_freed_memory() -> None:
    """Hand the heap that glibc keeps after a turn back to the system (`malloc_trim`), so two trainers taking
    turns hold about one turn's peak, not the sum of both (at 64 tokens x 8 rollouts the pair held 11 GB
    between turns without it). A no-op where glibc is not the allocator."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def paired_ratio(times: dict[str, list[float]], name: str, baseline: str) -> float:
    """Median over steps of times[name][i] / times[baseline][i] (a time ratio: < 1 means `name` is faster)."""
    return statistics.median(t / b for t, b in zip(times[name], times[baseline], strict=True))


def time_summary(times: dict[str, list[float]]) -> dict:
    """Median, mean and every value per name, rounded, for a results file."""
    return {
        "median": {n: round(statistics.median(t), 4) for n, t in times.items()},
        "mean": {n: round(statistics.mean(t), 4) for n, t in times.items()},
        "all": {n: [round(x, 4) for x in t] for n, t in times.items()},
    }


def read_results(path: Path) -> dict:
    return read_json(path)


def update_results(path: Path, key: str, value) -> dict:
    """Set `results[key] = value` in the JSON file at `path` and rewrite it atomically; returns the whole file."""
    results = read_json(path)
    results[key] = value
    write_json(path, results)
    return results


def code_version(root: Path) -> str | None:
    """The commit the measured code is at (`git describe --always --dirty`), or $MOON_RL_COMMIT outside a checkout."""
    try:
        done = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        done = None
    if done is not None and done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip()
    return os.environ.get("MOON_RL_COMMIT")
