"""Reward plug-ins for the reliability tests, written the way a user writes them (no moon-rl imports).
The broken ones of tests/reward_fns/custom_rewards.py (NaN, one value short) are reused from there.

    --reward tests/reliability/hostile_rewards.py:constant
"""


def constant(completions, **kwargs):
    """The same score for every completion: every group's advantage is zero."""
    return [0.5 for _ in completions]


def always_raises(completions, **kwargs):
    """User code that crashes on every input."""
    raise KeyError("attributes")
