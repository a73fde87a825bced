"""One exception type for mistakes the user can fix (bad input, missing file, missing extra).

The CLI prints these as a one-line `error: ...` and exits with status 2 instead of a traceback;
library callers can catch them like any ValueError.
"""


class MoonError(ValueError):
    """A problem with the user's input or environment; the message says what, where and how to fix it."""


class MissingExtraError(MoonError, ImportError):
    """An optional dependency (vllm, bitsandbytes, deepspeed) is needed but not installed or not usable."""

    def __init__(self, feature: str, extra: str, detail: str = ""):
        msg = f"{feature} needs the '{extra}' extra: pip install 'moon-rl[{extra}]'"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)
