"""`activation_checkpointing_off` (moon_rl/trainers/grpo/trainer.py): TRL's `disable_gradient_checkpointing` under
transformers 5's names, so the rollout-embedding forward raises no deprecation warning of ours."""

import warnings
from types import SimpleNamespace

import pytest

from moon_rl.trainers.grpo.trainer import activation_checkpointing_off


@pytest.mark.parametrize("was_on", [True, False])
def test_turns_checkpointing_off_inside_and_back_on_with_its_kwargs(was_on):
    calls = []
    model = SimpleNamespace(
        is_activation_checkpointing=was_on,
        activation_checkpointing_disable=lambda: calls.append("off"),
        activation_checkpointing_enable=lambda kwargs: calls.append(("on", kwargs)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with activation_checkpointing_off(model, {"use_reentrant": False}):
            calls.append("inside")
    assert calls == (["off", "inside", ("on", {"use_reentrant": False})] if was_on else ["inside"])


def test_back_on_after_an_error_inside():
    calls = []
    model = SimpleNamespace(is_activation_checkpointing=True, activation_checkpointing_disable=lambda: calls.append("off"),
                            activation_checkpointing_enable=lambda kwargs: calls.append("on"))
    with pytest.raises(RuntimeError), activation_checkpointing_off(model):
        raise RuntimeError("boom")
    assert calls == ["off", "on"]


def test_a_real_model_warns_nothing(tmp_path):
    from moon_rl.models.tiny import make_tiny_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(make_tiny_model("qwen2", tmp_path / "m"))
    model.activation_checkpointing_enable()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with activation_checkpointing_off(model):
            assert not model.is_activation_checkpointing
    assert model.is_activation_checkpointing
