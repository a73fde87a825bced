"""The exception for reward mistakes the user can fix: a bad reward spec, a reward that breaks the contract,
a reward missing its inputs (`retrieval` without embeddings), a bad `rewards check` input.

The `moon-rl` CLI prints a `RewardError` as a one-line `error: ...` and exits with status 2 (it is one of
`moon_rl.errors.USER_ERRORS`); library callers can catch it like any ValueError. A reward that raises
`RewardError` itself reports a configuration problem: `GuardedReward` passes it on, never skips it.
"""


class RewardError(ValueError):
    """A problem with a reward or its input; the message says what, where and how to fix it."""
