"""Tests for moon_rl/models/tiny and `moon-rl make-tiny-model`: each arch loads offline and generates,
the tokenizer round-trips product text with single-id special tokens, the chat template and processor
give what TRL expects, builds are deterministic, sizes are in the documented ranges."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from moon_rl.cli import app
from moon_rl.errors import MoonError
from moon_rl.models.tiny import ARCHS, INFO_FILE, SPECIAL_TOKENS, SPECS, TOKEN_IDS, VL_ARCHS, make_tiny_model
from moon_rl.models.tiny import vocabulary as V
from moon_rl.models.tiny.tokenizer import REASONING_TOKENS

TRACE = '<think>colour: the title says navy.</think><answer>{"colour": "navy", "Net content": "150mm"}</answer>'


def _load(path, arch):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    if arch in VL_ARCHS:
        processor = AutoProcessor.from_pretrained(path)
        return AutoModelForImageTextToText.from_pretrained(path), processor, processor.tokenizer
    tokenizer = AutoTokenizer.from_pretrained(path)
    return AutoModelForCausalLM.from_pretrained(path), tokenizer, tokenizer


def _vl_inputs(processor, colour, size=(56, 56)):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(text=[text], images=[Image.new("RGB", size, colour)], return_tensors="pt")


# ---- each architecture loads and generates ------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_each_arch_loads_and_generates(tiny_model_dir, arch):
    path = tiny_model_dir(arch)
    model, processing, tokenizer = _load(path, arch)
    config = model.config.get_text_config()
    assert type(model).__name__ == json.loads((path / "config.json").read_text())["architectures"][0]
    assert config.vocab_size >= len(tokenizer)
    assert config.pad_token_id == tokenizer.pad_token_id == TOKEN_IDS["<|endoftext|>"]
    assert tokenizer.eos_token_id == TOKEN_IDS["<|im_end|>"] in model.generation_config.eos_token_id
    if arch in VL_ARCHS:
        for attr, token in [("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                            ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]:
            assert getattr(model.config, attr) == tokenizer.convert_tokens_to_ids(token)
        inputs = _vl_inputs(processing, (200, 30, 30))
        assert (inputs["input_ids"] == model.config.image_token_id).sum() == inputs["image_grid_thw"].prod() // 4
    else:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "Colour?"}], add_generation_prompt=True,
                                             tokenize=False)
        inputs = tokenizer([text], return_tensors="pt")

    out = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:]
    assert new.shape == (4,) and int(new.max()) < config.vocab_size
    assert isinstance(tokenizer.decode(new), str)


@pytest.mark.parametrize("arch", VL_ARCHS)
def test_vl_model_sees_the_image(tiny_model_dir, arch):
    model, processor, _ = _load(tiny_model_dir(arch), arch)
    with torch.no_grad():
        red = model(**_vl_inputs(processor, (220, 20, 20))).logits[0, -1]
        blue = model(**_vl_inputs(processor, (20, 20, 220))).logits[0, -1]
    assert not torch.allclose(red, blue)


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_square_images_of_any_size_become_the_documented_number_of_image_tokens(tiny_model_dir, size):
    from transformers import AutoProcessor

    path = tiny_model_dir("qwen2_5_vl", size)
    processor = AutoProcessor.from_pretrained(path)
    expected = json.loads((path / INFO_FILE).read_text())["image_tokens_square"]
    assert expected == (SPECS[size].image_side // 28) ** 2
    for side in (30, 56, 111, 300, 1000):  # 300 is where min_pixels = max_pixels would round to 1 token
        inputs = _vl_inputs(processor, (0, 128, 0), size=(side, side))
        assert (inputs["input_ids"] == TOKEN_IDS["<|image_pad|>"]).sum() == expected, side


# ---- tokenizer ------------------------------------------------------------------------------------


def test_tokenizer_round_trips_product_vocabulary(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir("qwen2"))
    texts = list(V.CATEGORIES) + list(V.INSTRUCTIONS) + [" ".join(V.COLOURS), " ".join(V.ATTRIBUTE_NAMES)]
    texts += [TRACE, "Seapesca Wobbler 150mm 9g, 2XL\ttab", "Größe: 42 — 日本製 ✓ 🙂", '{"a": ["x", "y"]}\n']
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids) == text
    # The BPE learned the product words: common values are one token (with their leading space).
    for word in V.COLOURS + V.MATERIALS + V.FITS:
        assert len(tokenizer(" " + word)["input_ids"]) == 1, word


def test_special_tokens_are_single_ids_and_reasoning_tags_survive_skip_special(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir("qwen3"))
    for token in SPECIAL_TOKENS:
        assert tokenizer(token)["input_ids"] == [TOKEN_IDS[token]]
    ids = tokenizer(TRACE + "<|im_end|>")["input_ids"]
    assert [i for i in ids if i in {TOKEN_IDS[t] for t in REASONING_TOKENS}] == [7, 8, 9, 10]
    # TRL decodes completions with skip_special_tokens=True before calling the rewards.
    assert tokenizer.decode(ids, skip_special_tokens=True) == TRACE
    assert tokenizer.bos_token is None  # like Qwen: nothing is prepended
    assert tokenizer("x")["input_ids"] == tokenizer.convert_tokens_to_ids(["x"])


def test_extra_corpus_teaches_new_words(tmp_path):
    plain = make_tiny_model("qwen2", tmp_path / "plain")
    taught = make_tiny_model("qwen2", tmp_path / "taught", extra_corpus=["Zorblax Hypercolour Jacket"] * 5)
    from transformers import AutoTokenizer

    def n_tokens(path):
        return len(AutoTokenizer.from_pretrained(path)("Zorblax")["input_ids"])

    assert n_tokens(taught) == 1 < n_tokens(plain)


# ---- chat template as TRL uses it ---------------------------------------------------------------


def test_chat_template_prompt_is_a_token_prefix_of_prompt_plus_completion(tiny_model_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir("qwen2_vl"))
    prompt = [
        {"role": "system", "content": "You label products."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Navy shirt. Colour?"}]},
    ]
    completion = [{"role": "assistant", "content": TRACE}]
    rendered = processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    assert rendered == (
        "<|im_start|>system\nYou label products.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Navy shirt. Colour?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    tokenizer = processor.tokenizer
    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True)["input_ids"]
    full = tokenizer.apply_chat_template(prompt + completion, return_dict=True, return_assistant_tokens_mask=True)
    assert full["input_ids"][: len(prompt_ids)] == prompt_ids  # SFTTrainer's completion mask relies on this
    masked = [i for i, m in zip(full["input_ids"], full["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(masked) == TRACE + "<|im_end|>\n"  # assistant_only_loss trains the stop token


def test_trl_needs_no_template_patch(tiny_model_dir):
    from transformers import AutoProcessor
    from trl.chat_template_utils import get_training_chat_template, is_chat_template_stop_token_trained

    processor = AutoProcessor.from_pretrained(tiny_model_dir("qwen2_5_vl"))
    assert get_training_chat_template(processor) is None
    assert is_chat_template_stop_token_trained(processor)


# ---- determinism, sizes, overwrite --------------------------------------------------------------


def test_same_seed_same_files_different_seed_different_weights(tmp_path):
    a = make_tiny_model("qwen2_5_vl", tmp_path / "a", seed=3)
    b = make_tiny_model("qwen2_5_vl", tmp_path / "b", seed=3)
    c = make_tiny_model("qwen2_5_vl", tmp_path / "c", seed=4)
    wa, wb, wc = (load_file(p / "model.safetensors") for p in (a, b, c))
    assert wa.keys() == wb.keys() == wc.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not any(torch.equal(wa[k], wc[k]) for k in wa if wa[k].std() > 0)  # norms start at 1 in both
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "processor_config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes() == (c / name).read_bytes(), name


def test_building_does_not_touch_the_global_rng(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_tiny_model("qwen3", tmp_path / "m", seed=9)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(("size", "low", "high"), [("tiny", 100_000, 1_000_000), ("small", 1_000_000, 10_000_000)])
@pytest.mark.parametrize("arch", ARCHS)
def test_parameter_counts_in_documented_ranges(tiny_model_dir, arch, size, low, high):
    path = tiny_model_dir(arch, size)
    info = json.loads((path / INFO_FILE).read_text())
    weights = load_file(path / "model.safetensors")
    assert sum(t.numel() for t in weights.values()) == info["parameters"]["total"]
    assert low <= info["parameters"]["total"] <= high
    assert (info["parameters"]["vision"] > 0) == (arch in VL_ARCHS)


def test_refuses_non_empty_out_and_force_replaces_previous_build(tmp_path):
    out = make_tiny_model("qwen2_vl", tmp_path / "m")
    with pytest.raises(MoonError, match="not empty.*--force"):
        make_tiny_model("qwen2", out)
    (out / "notes.txt").write_text("mine")
    make_tiny_model("qwen2", out, force=True)
    assert json.loads((out / "config.json").read_text())["model_type"] == "qwen2"
    assert not (out / "processor_config.json").exists()  # stale VL file removed
    assert (out / "notes.txt").read_text() == "mine"  # files that are not model artifacts are kept


def test_unknown_arch_or_size_names_the_choices(tmp_path):
    with pytest.raises(MoonError, match="qwen2_5_vl"):
        make_tiny_model("llama", tmp_path / "x")
    with pytest.raises(MoonError, match="tiny, small"):
        make_tiny_model("qwen2", tmp_path / "y", size="huge")


# ---- CLI ------------------------------------------------------------------------------------------


def test_cli_help_lists_the_options():
    result = CliRunner().invoke(app, ["make-tiny-model", "--help"])
    assert result.exit_code == 0
    for option in ("--arch", "--out", "--size", "--seed", "--corpus", "--force"):
        assert option in result.output


def test_cli_builds_a_loadable_model_and_reports_errors(tmp_path):
    corpus = tmp_path / "titles.txt"
    corpus.write_text("Quillfeather Merino Henley\n" * 4, encoding="utf-8")
    out = tmp_path / "model"
    args = ["make-tiny-model", "--arch", "qwen3", "--out", str(out), "--seed", "1", "--corpus", str(corpus)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    info = json.loads((out / INFO_FILE).read_text())
    assert info["arch"] == "qwen3" and info["seed"] == 1
    assert f'{info["parameters"]["total"]:,}' in result.output
    _, _, tokenizer = _load(out, "qwen3")
    assert len(tokenizer("Quillfeather")["input_ids"]) == 1  # learned from the --corpus file

    again = CliRunner().invoke(app, args)  # out is not empty now
    assert again.exit_code == 2 and "error:" in again.output and "--force" in again.output
    missing = CliRunner().invoke(app, [*args[:4], str(tmp_path / "new"), "--corpus", str(tmp_path / "nope.txt")])
    assert missing.exit_code == 2 and "nope.txt" in missing.output


# ---- TRL accepts the tiny VL model ---------------------------------------------------------------


def test_grpo_trainer_trains_the_tiny_vl_model(tiny_model_dir, tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    path = tiny_model_dir("qwen2_5_vl")
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]}]
    colours = [(250, 0, 0), (0, 0, 250)]
    dataset = Dataset.from_dict({"prompt": [prompt] * 2, "images": [[Image.new("RGB", (56, 56), c)] for c in colours]})

    def char_reward(completions, **kwargs):  # differs between any two different completions
        return [float(sum(map(ord, c[0]["content"]))) for c in completions]

    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=6, max_steps=1, learning_rate=1e-3, report_to="none",
                      logging_steps=1, save_strategy="no", use_cpu=True)
    trainer = GRPOTrainer(model=str(path), reward_funcs=char_reward, args=args, train_dataset=dataset)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    logged = trainer.state.log_history[0]
    assert "rewards/char_reward/mean" in logged and "loss" in logged
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    assert any("visual" in n for n in changed) and any("visual" not in n for n in changed)
