"""The exceptions for mistakes the user can fix (bad input, missing file, missing extra).

`MoonError` is moon_rl's own; the lower packages raise theirs (`data_prep.errors.DataPrepError`,
`reward_fns.errors.RewardError`), since they do not import moon_rl. `USER_ERRORS` holds all three: the CLI
prints any of them as a one-line `error: ...` and exits with status 2 instead of a traceback; library callers
can catch them like any ValueError.
"""

from data_prep.errors import DataPrepError
from reward_fns.errors import RewardError


class MoonError(ValueError):
    """A problem with the user's input or environment; the message says what, where and how to fix it."""


class MissingExtraError(MoonError, ImportError):
    """An optional dependency (vllm, bitsandbytes, deepspeed) is needed but not installed or not usable."""

    def __init__(self, feature: str, extra: str, detail: str = ""):
        msg = f"{feature} needs the '{extra}' extra: pip install 'moon-rl[{extra}]'"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


# What the CLI turns into one line (moon_rl.cli.common.run_guarded); every one is a ValueError.
USER_ERRORS: tuple[type[ValueError], ...] = (MoonError, DataPrepError, RewardError)
