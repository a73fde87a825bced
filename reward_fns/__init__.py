"""Reward functions for moon-rl's GRPO stage, in TRL's contract.

A reward is `fn(completions, **kwargs) -> list[float | None]`: one value per completion, `None` when it
does not apply to that sample. Dataset columns arrive as keyword arguments (`attributes`, `options`,
`category`, `title`, `group_id`, `id`, ...), plus TRL's `prompts`, `completion_ids`, `trainer_state` and
moon-rl's `embeddings`.

Use a built-in by name, or your own in a few lines:

    # my_rewards.py
    def mentions_brand(completions, title, **kwargs):
        return [float(t.split()[0].lower() in c[0]["content"].lower()) for c, t in zip(completions, title)]

    moon-rl grpo ... --reward attribute_f1 --reward format=0.5 --reward my_rewards.py:mentions_brand=0.2

`moon-rl rewards list` shows every reward; `moon-rl rewards check SPEC --data DIR` tests one against the
contract. Resolution rules are in `reward_fns.registry`; the training-time contract checks in
`reward_fns.guard`. A reward that finds its configuration wrong (a missing keyword, a bad parameter) raises
`reward_fns.errors.RewardError`: training stops on that one line, even under `--reward-errors skip`.
"""

from reward_fns.attributes import AttributeChoice, AttributeF1, attribute_hits, attribute_matches, f1_from_counts
from reward_fns.category import CategoryReward
from reward_fns.format import FormatReward
from reward_fns.grounding import GroundedReasoningReward
from reward_fns.guard import GuardedReward
from reward_fns.length import OverlongReward
from reward_fns.pairwise import PairwiseChoiceReward
from reward_fns.parsing import completion_text, extract_tagged, normalize_value, parse_answer
from reward_fns.registry import BUILTINS, available_rewards, resolve_reward, resolve_rewards
from reward_fns.retrieval import RetrievalReward

__all__ = [
    "BUILTINS",
    "AttributeChoice",
    "AttributeF1",
    "CategoryReward",
    "FormatReward",
    "GroundedReasoningReward",
    "GuardedReward",
    "OverlongReward",
    "PairwiseChoiceReward",
    "RetrievalReward",
    "attribute_hits",
    "attribute_matches",
    "available_rewards",
    "completion_text",
    "extract_tagged",
    "f1_from_counts",
    "normalize_value",
    "parse_answer",
    "resolve_reward",
    "resolve_rewards",
]
