"""Rollouts with the LoRA adapter merged (`moon_rl.models.merged_lora`): the merged model computes what the adapter
computes, the frozen base comes back bit for bit, and the GRPO trainer uses it while the contrastive term trains."""

from __future__ import annotations

import torch

from grpo_support import fast_config, grpo_dataset, load_model, moon_trainer


def peft_model(model_dir, dropout: float = 0.0):
    from peft import LoraConfig, get_peft_model

    model, _ = load_model(model_dir)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules="all-linear", init_lora_weights=False))
    return peft  # init_lora_weights=False: B is random, so the adapter changes the output


def base_weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}


def test_merged_model_computes_the_adapters_output_and_restores_the_base_exactly(tiny_model_dir):
    from moon_rl.models.merged_lora import merged_lora

    model = peft_model(tiny_model_dir("qwen2")).eval()
    ids = torch.tensor([[3, 7, 11, 19, 23]])
    before = base_weights(model)
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        with merged_lora(model) as merged:
            got = model(input_ids=ids).logits
            moved = [n for n, p in model.named_parameters() if "lora_" not in n and not torch.equal(p, before[n])]
        after = model(input_ids=ids).logits
    assert merged and moved  # the base weights did hold the merged adapter inside the block
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if "lora_" not in n)
    torch.testing.assert_close(after, expected, atol=0, rtol=0)
    assert not any(getattr(m, "merged_adapters", []) for m in model.modules())


def test_live_dropout_is_not_merged(tiny_model_dir):
    from moon_rl.models.merged_lora import merged_lora

    model = peft_model(tiny_model_dir("qwen2"), dropout=0.1).train()
    before = base_weights(model)
    with merged_lora(model) as merged:
        assert not merged
        assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if "lora_" not in n)


def test_grpo_rollouts_run_merged_and_the_frozen_base_never_moves(tiny_model_dir, tmp_path, monkeypatch):
    from moon_rl.models import merged_lora as module
    from moon_rl.trainers.grpo import trainer as trainer_module

    entered = []
    real = module.merged_lora

    def spy(model):
        context = real(model)

        class Spy:
            def __enter__(self):
                merged = context.__enter__()
                entered.append(merged)
                return merged

            def __exit__(self, *exc):
                return context.__exit__(*exc)

        return Spy()

    monkeypatch.setattr(trainer_module, "merged_lora", spy)
    trainer = moon_trainer(tiny_model_dir("qwen2"), fast_config(tmp_path / "run"), dataset=grpo_dataset("text"))
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    lora_before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    assert entered and all(entered)  # every generation ran merged
    params = dict(trainer.model.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in frozen.items())
    assert any(not torch.equal(params[n], v) for n, v in lora_before.items())  # and the adapter trained
    assert [h for h in trainer.state.log_history if "loss" in h]


def test_term_off_generates_as_trl_does(tiny_model_dir, tmp_path, monkeypatch):
    from moon_rl.trainers.grpo import trainer as trainer_module

    calls = []
    monkeypatch.setattr(trainer_module, "merged_lora", lambda model: calls.append(model))
    trainer = moon_trainer(tiny_model_dir("qwen2"), fast_config(tmp_path / "run", contrastive_weight=0.0, max_steps=1), dataset=grpo_dataset("text"))
    trainer.train()
    assert calls == []
