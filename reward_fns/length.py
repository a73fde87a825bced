"""`overlong`: soft penalty for completions longer than a token budget (DAPO's soft overlong punishment).

Reuses TRL's `get_soft_overlong_punishment` as is: 0 up to `max_len - soft_cache` tokens, then falling
linearly to -1 at `max_len`, and -1 beyond. Lengths are counted in tokens from the `completion_ids`
keyword that TRL's GRPOTrainer passes. Set `max_len` to the trainer's `max_completion_length` (TRL's
default, 512, is the default here too) so the penalty starts before generations are cut off.
"""

from __future__ import annotations

from typing import Any

from reward_fns.errors import RewardError

__all__ = ["OverlongReward"]


class OverlongReward:
    """Soft overlong penalty in [-1, 0] (`max_len`, `soft_cache` in tokens).

    >>> OverlongReward(max_len=100, soft_cache=20)(["a", "b"], completion_ids=[[1] * 50, [1] * 90])
    [0.0, -0.5]
    """

    __name__ = "overlong"

    def __init__(self, max_len: int = 512, soft_cache: int = 128):
        if not isinstance(max_len, int) or not isinstance(soft_cache, int) or max_len <= 0:
            raise RewardError(
                f"overlong reward: max_len and soft_cache must be integers, got {max_len!r}, {soft_cache!r}"
            )
        if not 0 <= soft_cache <= max_len:
            raise RewardError(
                f"overlong reward: need 0 <= soft_cache <= max_len, got soft_cache={soft_cache}, max_len={max_len}"
            )
        from trl.rewards.other_rewards import get_soft_overlong_punishment

        self.max_len, self.soft_cache = max_len, soft_cache
        self._trl_reward = get_soft_overlong_punishment(max_completion_len=max_len, soft_punish_cache=soft_cache)

    def __call__(self, completions: list, completion_ids: list | None = None, **kwargs: Any) -> list[float]:
        if completion_ids is None:
            raise RewardError("overlong reward: no `completion_ids` keyword (TRL's GRPOTrainer passes it); "
                            "it counts tokens, not characters")
        return [float(r) for r in self._trl_reward(completion_ids)]
