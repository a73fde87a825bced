"""The exception for data mistakes the user can fix: a bad catalog row, a missing or unsafe image, an
unreadable saved dataset, an output folder that would overwrite an input.

The `moon-rl` CLI prints a `DataPrepError` as a one-line `error: ...` and exits with status 2 (it is one of
`moon_rl.errors.USER_ERRORS`); library callers can catch it like any ValueError.
"""


class DataPrepError(ValueError):
    """A problem with the user's data; the message says what, where and how to fix it."""
