"""Custom rewards the way a user writes them, for tests of the registry, `rewards check` and the GRPO run.

    --reward tests/reward_fns/custom_rewards.py:length_bonus=0.1
    --reward "tests/reward_fns/custom_rewards.py:keyword_reward(word=navy)"

Deliberately plain Python with no moon-rl imports: a custom reward needs nothing from the project.
The `broken_*` functions break the reward contract on purpose, for the checking tools.
"""


def _text(completion):
    # TRL passes conversational completions as [{"role": "assistant", "content": ...}], else strings.
    return completion if isinstance(completion, str) else completion[0]["content"]


def length_bonus(completions, **kwargs):
    """Longer completions score higher, up to 1.0 at 200 characters (a toy reward to steer length)."""
    return [min(len(_text(c)), 200) / 200 for c in completions]


class _KeywordReward:
    __name__ = "keyword_reward"

    def __init__(self, word):
        self.word = str(word).lower()

    def __call__(self, completions, **kwargs):
        return [1.0 if self.word in _text(c).lower() else 0.0 for c in completions]


def keyword_reward(word="navy"):
    """Factory: 1.0 when the completion mentions `word` (a parametrised reward)."""
    return _KeywordReward(word)


def broken_nan(completions, **kwargs):
    """Returns NaN for every other completion."""
    return [float("nan") if i % 2 else 1.0 for i in range(len(completions))]


def broken_raises_on_empty(completions, **kwargs):
    """Raises on an empty completion (as careless parsing code does)."""
    return [1.0 / len(_text(c)) for c in completions]


def broken_short(completions, **kwargs):
    """Returns one value too few."""
    return [0.0] * (len(completions) - 1)


def broken_types(completions, **kwargs):
    """Returns strings."""
    return ["1.0" for _ in completions]
