"""moon-rl trainers as drop-ins for TRL's: each TRL feature the trainers accept, run with the contrastive term
off and on, must train every trainable parameter and log only finite metrics (the checks of TRL's own
tests/test_grpo_trainer.py and tests/test_sft_trainer.py), on the tiny local Qwen2 (and one Qwen2.5-VL case).

Term off, the policy must be the backbone alone (no `moon_extras` parameter); term on, the contrastive loss
must be logged (its batches hold positives). Data is built here, in memory, in TRL's dataset formats (standard
and conversational) plus the `id` / `group_id` columns the term needs (two rows per group); a run with the
term off gets no id columns at all, as a TRL user's dataset would have none.
"""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset

from moon_rl.errors import MoonError
from moon_rl.trainers.grpo.config import MoonGRPOConfig
from moon_rl.trainers.grpo.trainer import MoonGRPOTrainer
from moon_rl.trainers.sft.config import MoonSFTConfig
from moon_rl.trainers.sft.trainer import MoonSFTTrainer

WORDS = ["red cotton shirt", "blue ceramic mug", "black leather bag", "green wool scarf", "white linen dress",
         "brown suede boots", "grey denim jacket", "yellow silk tie"]
TERM = {"off": 0.0, "on": 0.5}


@pytest.fixture(scope="module")
def text_model(tiny_model_dir):
    return str(tiny_model_dir("qwen2"))


def rows(n: int = 8, conversational: bool = False, ids: bool = True) -> list[dict]:
    """n prompt rows; rows 2k and 2k+1 are two views of product k (same group_id)."""
    out = []
    for i in range(n):
        text = f"{'describe' if i % 2 else 'name'} the {WORDS[(i // 2) % len(WORDS)]}"
        row = {"prompt": [{"role": "user", "content": text}] if conversational else text}
        if ids:
            row |= {"id": f"r{i}", "group_id": f"g{i // 2}"}
        out.append(row)
    return out


def spread_reward(completions, **kwargs):
    """Differs between rollouts of a random model, so advantages (and every gradient) are non-zero."""
    texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
    return [(sum(map(ord, t)) % 7) / 6 for t in texts]


def length_reward(completions, **kwargs):
    return [len(c if isinstance(c, str) else c[0]["content"]) / 50 for c in completions]


def trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def assert_trained(trainer, before: dict[str, torch.Tensor], term: str, attached: bool | None = None) -> None:
    """TRL's test checks: every trainable parameter changed, every logged number is finite; plus moon-rl's."""
    after = dict(trainer.model.named_parameters())
    unchanged = [n for n, p in before.items() if torch.equal(p, after[n])]
    assert not unchanged, f"trainable parameters that did not change: {unchanged[:5]}"
    logs = trainer.state.log_history
    assert logs and any("loss" in h for h in logs)
    bad = {k: v for h in logs for k, v in h.items() if isinstance(v, float) and not math.isfinite(v)}
    assert not bad, f"non-finite metrics: {bad}"
    has_head = any("moon_extras" in n for n, _ in trainer.model.named_parameters())
    assert has_head == (attached if attached is not None else term == "on")
    contrastive = [h["contrastive_loss"] for h in logs if "contrastive_loss" in h]
    assert bool(contrastive) == (term == "on"), "the term on must see positives; off, it must not run"


# ---- GRPO ---------------------------------------------------------------------------------------


def grpo_config(out, term: str, **overrides) -> MoonGRPOConfig:
    values = dict(output_dir=str(out), max_steps=2, per_device_train_batch_size=4, num_generations=2,
                  max_completion_length=8, learning_rate=1e-2, logging_steps=1, save_strategy="no", report_to="none",
                  bf16=False, activation_checkpointing=False, seed=0, disable_tqdm=True, contrastive_weight=TERM[term],
                  embedding_dim=16)  # a projection head (the default has none), so "the head trains" is checked too
    return MoonGRPOConfig(**{**values, **overrides})


def grpo_run(model, term: str, tmp_path, data: dict | None = None, rewards=None, attached=None, **overrides):
    """Build, train and check a MoonGRPOTrainer; returns it."""
    data = dict(data or {})
    dataset = Dataset.from_list(rows(conversational=data.pop("conversational", True), ids=term == "on"))
    if data.pop("iterable", False):
        dataset = dataset.to_iterable_dataset()
    trainer = MoonGRPOTrainer(model=model, reward_funcs=rewards or spread_reward, args=grpo_config(tmp_path, term, **overrides),
                              train_dataset=dataset, **data)
    before = trainable(trainer.model)
    trainer.train()
    assert_trained(trainer, before, term, attached)
    return trainer


GRPO_FEATURES = {
    **{f"loss_{t}": dict(loss_type=t) for t in ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "vespo")},
    "loss_luspo": dict(loss_type="luspo", importance_sampling_level="sequence"),
    "scale_batch": dict(scale_rewards="batch"),
    "scale_none": dict(scale_rewards="none"),
    "beta_ref_model": dict(beta=0.1),
    "sync_ref_model": dict(beta=0.1, sync_ref_model=True, ref_model_sync_steps=1, ref_model_mixup_alpha=0.5),
    "num_iterations": dict(num_iterations=2),
    "accumulation": dict(gradient_accumulation_steps=2),
    "generation_kwargs": dict(generation_kwargs={"top_k": 5, "repetition_penalty": 1.2}, temperature=0.9),
    "top_entropy_quantile": dict(top_entropy_quantile=0.5),
    "gspo_sequence_level": dict(importance_sampling_level="sequence"),
    "delta_clipping": dict(delta=2.0),
    "bias_correction_kl": dict(beta=0.1, use_bias_correction_kl=True),
    "cast_lm_head_to_fp32": dict(cast_lm_head_to_fp32=True),
    "generation_batch_over_steps": dict(steps_per_generation=2),
}


@pytest.mark.parametrize("term", ["off", "on"])
@pytest.mark.parametrize("feature", list(GRPO_FEATURES))
def test_grpo_feature(text_model, tmp_path, feature, term):
    grpo_run(text_model, term, tmp_path, **GRPO_FEATURES[feature])


@pytest.mark.parametrize("term", ["off", "on"])
@pytest.mark.parametrize("fmt", ["standard", "conversational"])
def test_grpo_dataset_formats(text_model, tmp_path, fmt, term):
    grpo_run(text_model, term, tmp_path, data={"conversational": fmt == "conversational"})


@pytest.mark.parametrize("term", ["off", "on"])
def test_grpo_iterable_dataset(text_model, tmp_path, term):
    """The sampler cannot order a stream: positives come from a stream whose rows of one group are adjacent."""
    grpo_run(text_model, term, tmp_path, data={"iterable": True}, shuffle_dataset=False)


def test_grpo_shuffled_iterable_dataset_warns_that_positives_are_left_to_chance(text_model, tmp_path):
    dataset = Dataset.from_list(rows()).to_iterable_dataset()
    with pytest.warns(UserWarning, match="only by chance"):
        MoonGRPOTrainer(model=text_model, reward_funcs=spread_reward, args=grpo_config(tmp_path, "on", max_steps=1), train_dataset=dataset)


@pytest.mark.parametrize("term", ["off", "on"])
@pytest.mark.parametrize("weights", [None, [0.7, 0.3]], ids=["multiple", "weighted"])
def test_grpo_reward_functions(text_model, tmp_path, weights, term):
    trainer = grpo_run(text_model, term, tmp_path, rewards=[spread_reward, length_reward], reward_weights=weights)
    assert any("rewards/length_reward/mean" in h for h in trainer.state.log_history)


@pytest.mark.parametrize("term", ["off", "on"])
def test_grpo_reward_model(text_model, tmp_path, term):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    reward_model = AutoModelForSequenceClassification.from_pretrained(text_model, num_labels=1)
    reward_tok = AutoTokenizer.from_pretrained(text_model)
    reward_model.config.pad_token_id = reward_tok.pad_token_id
    grpo_run(text_model, term, tmp_path, rewards=[reward_model], data={"reward_processing_classes": [reward_tok]})


@pytest.mark.parametrize("term", ["off", "on"])
@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "activation_checkpointing"])
@pytest.mark.parametrize("beta", [0.0, 0.1], ids=["no_ref", "ref_adapter_off"])
def test_grpo_peft(text_model, tmp_path, checkpointing, beta, term):
    from peft import LoraConfig

    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = grpo_run(text_model, term, tmp_path, data={"peft_config": peft_config},
                       activation_checkpointing=checkpointing, beta=beta)
    base = [n for n, p in trainer.model.named_parameters() if "lora_" not in n and "moon_extras" not in n]
    assert base and all(not dict(trainer.model.named_parameters())[n].requires_grad for n in base)


@pytest.mark.parametrize("term", ["off", "on"])
def test_grpo_residual_module(text_model, tmp_path, term):
    """With the term off, `residual_enhancement` attaches its module (part of the forward) and a frozen head."""
    trainer = grpo_run(text_model, term, tmp_path, attached=True, residual_enhancement=True, beta=0.1, sync_ref_model=True,
                       ref_model_sync_steps=1)
    extras = trainer.moon_extras()
    assert extras.residual.gates.requires_grad
    assert all(p.requires_grad == (term == "on") for p in extras.head.parameters())


def test_grpo_vlm_prompts(tiny_model_dir, tmp_path):
    """Image prompts on the tiny Qwen2.5-VL (TRL's VLM tests), term on: every LoRA weight and the head train."""
    from peft import LoraConfig
    from PIL import Image

    model = str(tiny_model_dir("qwen2_5_vl"))
    data = [
        {"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": r["prompt"]}]}],
         "image": Image.new("RGB", (32, 32), (30 * i, 60, 150)), **{k: r[k] for k in ("id", "group_id")}}
        for i, r in enumerate(rows())
    ]
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = MoonGRPOTrainer(model=model, reward_funcs=spread_reward, args=grpo_config(tmp_path, "on"),
                              train_dataset=Dataset.from_list(data), peft_config=peft_config)
    before = trainable(trainer.model)
    trainer.train()
    assert_trained(trainer, before, "on")


# ---- GRPO: what TRL users get without asking ---------------------------------------------------


def test_grpo_args_none_builds_the_default_config_with_two_prompts_per_generation(text_model, monkeypatch, tmp_path):
    """args=None: TRL's default config named after the model, with moon-rl's defaults (the term on). TRL's default
    generation batch (8 rollouts = one prompt x 8 generations) would hold no positive pair, so with the term on it
    holds two prompts (steps_per_generation 2, issue 30); the batch size and G stay TRL's. Asking for TRL's
    one-prompt batch explicitly is refused before training, saying how."""
    monkeypatch.chdir(tmp_path)
    trainer = MoonGRPOTrainer(model=text_model, reward_funcs=spread_reward, train_dataset=Dataset.from_list(rows()))
    args = trainer.args
    assert (args.per_device_train_batch_size, args.num_generations, args.steps_per_generation, args.generation_batch_size) == (8, 8, 2, 16)
    one_prompt = MoonGRPOConfig(output_dir=str(tmp_path), steps_per_generation=1, bf16=False, report_to="none")
    with pytest.raises(MoonError, match=r"no positive pair.*per_device_train_batch_size") as err:
        MoonGRPOTrainer(model=text_model, reward_funcs=spread_reward, args=one_prompt, train_dataset=Dataset.from_list(rows()))
    assert "(8 / 8)" in str(err.value) and "group_id" in str(err.value)


def test_grpo_default_generation_batch_is_trls_with_the_term_off():
    """The drop-in rule covers the defaults: with contrastive_weight=0 the generation batch is TRL's own."""
    from trl import GRPOConfig

    ours, trls = MoonGRPOConfig(output_dir="o", contrastive_weight=0.0), GRPOConfig(output_dir="o", bf16=False)
    assert (ours.steps_per_generation, ours.generation_batch_size) == (trls.steps_per_generation, trls.generation_batch_size) == (1, 8)


def test_grpo_args_none_output_dir_is_trls(text_model, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    import moon_rl.trainers.common as trainers_common

    seen = {}
    monkeypatch.setattr(trainers_common, "check_positives_possible", lambda *a, **k: seen.setdefault("checked", True))
    trainer = MoonGRPOTrainer(model=text_model, reward_funcs=spread_reward, train_dataset=Dataset.from_list(rows()))
    assert isinstance(trainer.args, MoonGRPOConfig) and trainer.args.output_dir.endswith(f"{text_model.split('/')[-1]}-GRPO")
    assert seen == {"checked": True}


def test_grpo_args_none_with_trl_data_trains_as_trl(text_model, monkeypatch, tmp_path):
    """TRL's test_init_minimal: args=None and a plain prompt dataset (no id/group_id) must build, as with
    trl.GRPOTrainer: the term is off (said in a warning), so no head is attached and nothing is refused."""
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="no 'id'/'group_id' columns: contrastive term off"):
        trainer = MoonGRPOTrainer(model=text_model, reward_funcs=spread_reward, train_dataset=Dataset.from_list(rows(ids=False)))
    assert trainer.args.contrastive_weight == 0 and not trainer.contrastive_on
    assert not any("moon_extras" in n for n, _ in trainer.model.named_parameters())


@pytest.mark.parametrize("term", ["off", "on"])
def test_grpo_shuffle_dataset_false_keeps_dataset_order(text_model, tmp_path, term):
    """TRL's test_prepare_input_called_with_correct_data: shuffle_dataset=False feeds the rows in dataset order,
    each repeated num_generations times; with the term on too (the group sampler must not reshuffle)."""
    trainer = MoonGRPOTrainer(model=text_model, reward_funcs=spread_reward, train_dataset=Dataset.from_list(rows(ids=term == "on")),
                              args=grpo_config(tmp_path, term, shuffle_dataset=False, steps_per_generation=2))
    # generation batch = 4 rows x 2 generations (2 steps of 4 rollouts), replayed once per step; rows 0-3, then 4-7
    expected = [i for start in (0, 4) for _ in range(2) for i in range(start, start + 4) for _ in range(2)]
    assert list(trainer._get_train_sampler()) == expected

    with pytest.raises(MoonError, match=r"no \['id', 'group_id'\] column.*positives"):
        MoonGRPOTrainer(model=text_model, reward_funcs=spread_reward, args=grpo_config(tmp_path, "on"),
                        train_dataset=Dataset.from_list(rows(ids=False)))


def test_grpo_term_on_refuses_groups_of_one(text_model, tmp_path):
    data = [r | {"group_id": r["id"]} for r in rows()]
    with pytest.raises(MoonError, match="every training row has its own group_id"):
        MoonGRPOTrainer(model=text_model, reward_funcs=spread_reward, args=grpo_config(tmp_path, "on"), train_dataset=Dataset.from_list(data))


def test_grpo_plain_config_is_refused_with_the_way_out(text_model, tmp_path):
    from trl import GRPOConfig

    with pytest.raises(MoonError, match="contrastive_weight=0"):
        MoonGRPOTrainer(model=text_model, reward_funcs=spread_reward, args=GRPOConfig(str(tmp_path), bf16=False),
                        train_dataset=Dataset.from_list(rows()))


# ---- SFT ----------------------------------------------------------------------------------------


def sft_rows(fmt: str, ids: bool) -> list[dict]:
    out = []
    for r in rows(ids=ids):
        prompt, answer = r["prompt"], f"it is a {r['prompt'].split(' the ')[-1]} of good quality"
        row = {k: r[k] for k in ("id", "group_id") if k in r}
        if fmt == "language_modeling":
            row["text"] = f"{prompt}: {answer}"
        elif fmt == "prompt_completion":
            row |= {"prompt": prompt, "completion": answer}
        else:  # conversational
            row["messages"] = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        out.append(row)
    return out


def sft_run(model, term: str, tmp_path, fmt: str = "prompt_completion", iterable: bool = False, peft_config=None, **overrides):
    values = dict(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, learning_rate=1e-2, logging_steps=1,
                  save_strategy="no", report_to="none", bf16=False, activation_checkpointing=False, seed=0, disable_tqdm=True,
                  contrastive_weight=TERM[term], completion_only_loss=None,
                  embedding_dim=16)  # a projection head (the default has none), so "the head trains" is checked too
    dataset = Dataset.from_list(sft_rows(fmt, ids=term == "on"))
    if iterable:
        dataset = dataset.to_iterable_dataset()
    trainer = MoonSFTTrainer(model=model, args=MoonSFTConfig(**{**values, **overrides}), train_dataset=dataset, peft_config=peft_config)
    before = trainable(trainer.model)
    trainer.train()
    assert_trained(trainer, before, term)
    return trainer


@pytest.mark.parametrize("term", ["off", "on"])
@pytest.mark.parametrize("fmt", ["language_modeling", "prompt_completion", "conversational"])
def test_sft_dataset_formats(text_model, tmp_path, fmt, term):
    sft_run(text_model, term, tmp_path, fmt=fmt)


@pytest.mark.parametrize("term", ["off", "on"])
@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "activation_checkpointing"])
def test_sft_peft(text_model, tmp_path, checkpointing, term):
    from peft import LoraConfig

    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    sft_run(text_model, term, tmp_path, peft_config=peft_config, activation_checkpointing=checkpointing)


@pytest.mark.parametrize("term", ["off", "on"])
def test_sft_iterable_dataset_and_accumulation(text_model, tmp_path, term):
    sft_run(text_model, term, tmp_path, iterable=True, gradient_accumulation_steps=2)


def test_sft_packing_with_the_term_off(text_model, tmp_path):
    sft_run(text_model, "off", tmp_path, packing=True, max_length=64)


def test_sft_args_none_builds_the_default_config(text_model, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # TRL's default output_dir is relative: not the checkout
    trainer = MoonSFTTrainer(model=text_model, train_dataset=Dataset.from_list(sft_rows("prompt_completion", ids=True)))
    assert isinstance(trainer.args, MoonSFTConfig) and trainer.args.output_dir.endswith(f"{text_model.split('/')[-1]}-SFT")
    assert trainer.moon_extras() is not None  # moon-rl's default: the term on


def test_sft_term_on_refuses_batches_of_one_and_missing_columns(text_model, tmp_path):
    base = dict(output_dir=str(tmp_path), report_to="none", bf16=False, contrastive_weight=0.5)
    with pytest.raises(MoonError, match="no positive pair: each batch holds 1 distinct row"):
        MoonSFTTrainer(model=text_model, args=MoonSFTConfig(**base, per_device_train_batch_size=1),
                       train_dataset=Dataset.from_list(sft_rows("prompt_completion", ids=True)))
    with pytest.raises(MoonError, match=r"no \['id', 'group_id'\] column"):
        MoonSFTTrainer(model=text_model, args=MoonSFTConfig(**base), train_dataset=Dataset.from_list(sft_rows("prompt_completion", ids=False)))


def test_grpo_peft_reference_pass_runs_without_the_residual(text_model, tmp_path):
    """The reference of a PEFT policy is the adapter disabled; the residual module (identity at init, trained
    since) must be off too, or the KL term would compare against a moving reference."""
    from peft import LoraConfig

    from moon_rl.head.capture import peft_base

    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = MoonGRPOTrainer(model=text_model, reward_funcs=spread_reward, train_dataset=Dataset.from_list(rows(ids=False)),
                              args=grpo_config(tmp_path, "off", residual_enhancement=True, beta=0.1), peft_config=peft_config)
    residual = trainer.moon_extras().residual
    with torch.no_grad():
        residual.gates.fill_(0.5)  # as if trained
    ids = trainer.processing_class(["name the red cotton shirt"], return_tensors="pt")["input_ids"]
    mask = torch.ones_like(ids)
    with torch.no_grad(), trainer.model.disable_adapter():
        reference = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 3)[0]
        hooked = trainer._logps(trainer.model, ids, mask, 3)[0]  # TRL's pass with the residual hooks still on
        residual.detach()
        try:
            plain = trainer._logps(trainer.model, ids, mask, 3)[0]
        finally:
            residual.attach(peft_base(trainer.model))
    torch.testing.assert_close(reference, plain)
    assert not torch.allclose(hooked, plain), "the residual must change the forward, or this test checks nothing"
    with torch.no_grad():  # the policy pass keeps the residual
        torch.testing.assert_close(trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 3)[0],
                                   trainer._logps(trainer.model, ids, mask, 3)[0])
