"""reward_fns.guard: the training-time contract checks, in raise and skip modes."""

import asyncio
import logging
import pickle

import pytest
import torch
from custom_rewards import broken_nan, broken_raises_on_empty, broken_short, broken_types, length_bonus

from reward_fns.errors import RewardError
from reward_fns.guard import AsyncGuardedReward, GuardedReward, find_violations
from reward_fns.retrieval import RetrievalReward

COMPLETIONS = ["abcd", "", "ab", ""]
IDS = ["p0", "p1", "p2", "p3"]


def call(guard, completions=COMPLETIONS):
    # The keywords TRL's GRPOTrainer passes, plus a dataset column.
    return guard(prompts=["q"] * len(completions), completions=completions, completion_ids=[[1]] * len(completions),
                 id=IDS[: len(completions)], trainer_state=None)


def test_good_reward_passes_through_and_keeps_its_name():
    guard = GuardedReward(length_bonus)
    assert guard.__name__ == "length_bonus"
    assert call(guard) == [0.02, 0.0, 0.01, 0.0]
    assert guard.n_skipped == 0
    clone = pickle.loads(pickle.dumps(guard))
    assert clone.__name__ == "length_bonus" and call(clone) == call(guard)


def test_exception_names_reward_and_sample():
    guard = GuardedReward(broken_raises_on_empty)
    with pytest.raises(RewardError, match=r"'broken_raises_on_empty' raised ZeroDivisionError.*sample 1 \(id='p1'\)"):
        call(guard)


def test_exception_skipped_turns_the_batch_into_none(caplog):
    guard = GuardedReward(broken_raises_on_empty, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="moon_rl.rewards"):
        assert call(guard) == [None] * 4
    assert guard.n_skipped == 4 and guard.skipped_last == 4
    assert "4 value(s) set to None" in caplog.text
    assert call(guard, ["abc"]) == [pytest.approx(1 / 3)]
    assert guard.skipped_last == 0 and guard.n_skipped == 4


def test_non_finite_is_an_error_or_skipped_per_value():
    with pytest.raises(RewardError, match=r"sample 1 \(id='p1'\): non-finite: nan"):
        call(GuardedReward(broken_nan))
    guard = GuardedReward(broken_nan, on_error="skip")
    assert call(guard) == [1.0, None, 1.0, None]
    assert guard.n_skipped == 2


@pytest.mark.parametrize("fn, match", [(broken_short, "returned 3 values for 4"), (broken_types, "str '1.0'")])
def test_length_and_type_violations(fn, match):
    with pytest.raises(RewardError, match=match):
        call(GuardedReward(fn))
    guard = GuardedReward(fn, on_error="skip")
    assert call(guard) == [None] * 4
    assert guard.n_skipped == 4


def test_find_violations_types():
    import numpy as np

    values = [1, True, np.float32(0.5), None, torch.tensor(1.0), "x", float("inf")]
    kinds = [(v.index, v.kind) for v in find_violations(values, 7)]
    assert kinds == [(4, "type"), (5, "type"), (6, "non-finite")]
    assert find_violations(torch.ones(2), 2)[0].kind == "type"


def test_config_errors_of_builtins_always_propagate():
    guard = GuardedReward(RetrievalReward(), on_error="skip")
    with pytest.raises(RewardError, match="reward 'retrieval'.*embeddings"):
        call(guard)


def test_batch_only_failure_is_reported_as_batch():
    def needs_pairs(completions, **kwargs):
        if len(completions) < 2:
            return [0.0]
        raise RuntimeError("pairs broken")

    with pytest.raises(RewardError, match=r"pairs broken on the batch \(no single sample"):
        call(GuardedReward(needs_pairs))


def test_async_reward_gets_an_async_guard():
    async def async_nan(completions, **kwargs):
        return [float("nan")] * len(completions)

    guard = GuardedReward(async_nan, on_error="skip")
    assert isinstance(guard, AsyncGuardedReward) and guard.__name__ == "async_nan"
    assert asyncio.run(call(guard, ["a", "b"])) == [None, None]
    with pytest.raises(RewardError, match="non-finite"):
        asyncio.run(call(GuardedReward(async_nan), ["a"]))


def test_bad_mode():
    with pytest.raises(RewardError, match="skip"):
        GuardedReward(length_bonus, on_error="ignore")
