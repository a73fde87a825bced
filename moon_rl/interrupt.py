"""Graceful interruption: SIGINT/SIGTERM during training saves a checkpoint at the next step boundary
and stops cleanly, so a pre-empted job loses at most one step.

`GracefulInterrupt` is a `TrainerCallback`. The first signal sets a flag; at the end of the current
optimizer step the callback asks the Trainer to save and stop. A second SIGINT restores the default
handler behaviour (immediate KeyboardInterrupt) for a user who really wants out now.
"""

from __future__ import annotations

import signal
import sys

from transformers import TrainerCallback


class GracefulInterrupt(TrainerCallback):
    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)):
        self.signals = signals
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handler(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        print(
            f"\nmoon-rl: received {signal.Signals(signum).name}; saving a checkpoint at the end of this step and stopping "
            "(press Ctrl-C again to abort without saving)",
            file=sys.stderr,
            flush=True,
        )

    def on_train_begin(self, args, state, control, **kwargs):
        for sig in self.signals:
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: leave signals alone
                pass

    def on_step_end(self, args, state, control, **kwargs):
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def interrupted(self) -> bool:
        return self.received is not None
