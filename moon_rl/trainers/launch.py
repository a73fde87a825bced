"""The parent side of `moon-rl grpo --num-processes N`: run the `accelerate launch` child and stay out of
its way on a signal. Kept free of torch/transformers imports so the parent starts fast."""

from __future__ import annotations

import signal
import subprocess


def run_child(cmd: list[str], signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> int:
    """Run `cmd` and return its exit code, passing SIGINT/SIGTERM on to it and waiting for it to finish.

    Why not `subprocess.run`: on Ctrl-C it kills the child 0.25 s later, before the training processes can
    save their checkpoint, and a SIGTERM sent to the parent alone (a job scheduler) never reaches the child.
    Forwarding is safe for Ctrl-C too, where the child already got the signal from the terminal:
    `moon_rl.trainers.interrupt.GracefulInterrupt` ignores a repeat within a second.
    """
    child = subprocess.Popen(cmd)
    previous = {}

    def forward(signum, frame):
        if child.poll() is None:
            child.send_signal(signum)

    try:
        for sig in signals:
            try:
                previous[sig] = signal.signal(sig, forward)
            except ValueError:  # not the main thread
                pass
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:  # the parent itself failed: do not leave the training processes orphaned
            child.kill()
            child.wait()
