"""Graceful interruption: SIGINT/SIGTERM during training saves a checkpoint at the next step boundary
and stops cleanly, so a pre-empted job loses at most one step.

`GracefulInterrupt` is a `TrainerCallback` (`run_sft` / `run_grpo` pass one). The first signal sets a
flag; at the end of the current optimizer step the callback asks the Trainer to save and stop. A second
SIGINT (more than a second later: launchers such as torchrun forward the first one again at once) raises
KeyboardInterrupt for a user who really wants out now. The CLI then prints `interrupted at step N; resume
with: ...` (`interrupted_message`) and exits with `INTERRUPTED_EXIT` (75, EX_TEMPFAIL: try again), so a
script such as `moon-rl sft ... && moon-rl grpo ...` does not go on with a half-trained model.

Where it waits longer than one step, and why: TRL's GRPO generates rollouts once per
`steps_per_generation * num_iterations` micro-steps and keeps them in memory (`_buffered_inputs`), which a
checkpoint does not hold. A run resumed from inside such a cycle would generate new rollouts where the
uninterrupted run reused the buffered ones, so the stop waits for the end of the cycle (`stop_step`).
With TRL's defaults (num_iterations=1, steps_per_generation = gradient_accumulation_steps) every step
ends a cycle. Periodic checkpoints (`save_steps`) that fall inside a cycle are still saved, with a warning
that resuming from them regenerates that cycle's rollouts.

Multi-process runs: every process receives the signal at a slightly different moment, so the flag is
combined across processes (all-reduce, max) at each step end and all of them stop at the same step;
otherwise one would stop and the others would wait for it forever in the next collective.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import signal
import sys
import time

from transformers import TrainerCallback

logger = logging.getLogger("moon_rl.trainers.interrupt")

INTERRUPTED_EXIT = 75  # os.EX_TEMPFAIL: "temporary failure, the user is invited to retry"
REPEAT_GRACE_S = 1.0


def cycle_steps(args) -> int:
    """Optimizer steps per generation cycle: the smallest s with s * grad_accum a multiple of
    steps_per_generation * num_iterations (1 for SFT and for TRL's GRPO defaults)."""
    if args is None or getattr(args, "steps_per_generation", None) is None:
        return 1
    micro = int(args.steps_per_generation) * int(getattr(args, "num_iterations", 1) or 1)
    accum = int(getattr(args, "gradient_accumulation_steps", 1) or 1)
    return micro // math.gcd(micro, accum)


def stop_step(args, step: int) -> int:
    """The first optimizer step >= `step` at which a run can stop and resume exactly."""
    cycle = cycle_steps(args)
    return -(-step // cycle) * cycle


class GracefulInterrupt(TrainerCallback):
    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)):
        self.signals = signals
        self.received: int | None = None
        self._received_at = 0.0
        self._previous: dict[int, object] = {}
        self._args = None
        self._state = None

    def _handler(self, signum, frame):
        if self.received is not None:
            if signum == signal.SIGINT and time.monotonic() - self._received_at > REPEAT_GRACE_S:
                raise KeyboardInterrupt
            return
        self.received = signum
        self._received_at = time.monotonic()
        current = (self._state.global_step + 1) if self._state is not None else None
        where = "the end of this step"
        if current is not None and stop_step(self._args, current) != current:
            where = f"the end of step {stop_step(self._args, current)} (the end of this generation cycle)"
        print(
            f"\nmoon-rl: received {signal.Signals(signum).name}; saving a checkpoint at {where} and stopping "
            "(press Ctrl-C again to abort without saving)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> GracefulInterrupt:
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def on_train_begin(self, args, state, control, **kwargs):
        self._args, self._state = args, state
        for sig in self.signals:
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: leave signals alone
                pass
        save_steps = getattr(args, "save_steps", None)
        strategy = getattr(args, "save_strategy", None)
        cycle = cycle_steps(args)
        periodic = getattr(strategy, "value", strategy) == "steps" and isinstance(save_steps, int | float) and save_steps >= 1
        if cycle > 1 and periodic and int(save_steps) % cycle:
            logger.warning(
                "save_steps=%d is not a multiple of the generation cycle (%d steps: steps_per_generation x num_iterations "
                "/ gradient_accumulation_steps); a run resumed from such a checkpoint regenerates that cycle's rollouts "
                "instead of reusing them, so it does not retrace the uninterrupted run exactly",
                int(save_steps),
                cycle,
            )

    def on_step_end(self, args, state, control, **kwargs):
        flag = _any_process(self.received is not None)
        if flag and self.received is None:
            self.received = signal.SIGTERM  # another process was signalled
        if flag and (state is None or stop_step(args, state.global_step) == state.global_step):
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()

    def restore(self) -> None:
        """Put back the signal handlers that were there before training (safe to call twice)."""
        for sig, handler in self._previous.items():
            try:
                signal.signal(sig, handler)
            except ValueError:
                pass
        self._previous.clear()

    @property
    def interrupted(self) -> bool:
        return self.received is not None


def _any_process(flag: bool) -> bool:
    """`flag` or-ed over all processes of a torch.distributed job (the flag itself when single-process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    import torch

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


# ---- what the CLI prints ----------------------------------------------------------------------------


def resume_command(argv: list[str] | None = None, prog: str = "moon-rl") -> str:
    """The command line that continues this run: `argv` (default: this process's) without any `--resume`
    option, plus `--resume latest`. Under a multi-process launch, `--num-processes` is added back."""
    args = list(sys.argv[1:] if argv is None else argv)
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--resume":
            skip = True
        elif not arg.startswith("--resume="):
            kept.append(arg)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not any(a == "--num-processes" or a.startswith("--num-processes=") for a in kept):
        kept += ["--num-processes", str(world)]
    return shlex.join([prog, *kept, "--resume", "latest"])


def interrupted_message(step: int, argv: list[str] | None = None) -> str:
    return f"interrupted at step {step}; resume with: {resume_command(argv)}"
