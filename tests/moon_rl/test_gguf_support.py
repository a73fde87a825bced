"""Tests for tests/moon_rl/gguf_support.py: the tiny GGUF files it writes load in transformers
(`from_pretrained(folder, gguf_file=name)`) with the source model's config, weights (f32 exactly, q8_0
within one quantisation step), tokenizer ids and chat template; its hostile copies are what they claim."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("gguf", reason="GGUF tests need the `gguf` package (pip install gguf)")

import gguf  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from gguf_support import (  # noqa: E402
    _llama_permute,
    fill_random,
    make_tiny_llama,
    truncate_copy,
    with_architecture,
    write_tiny_gguf,
)

TITLE = "Women's Navy Blue Cotton T-Shirt, Slim Fit, 150mm x 2 — 100% organic é"
MESSAGES = [
    {"role": "user", "content": "Extract the colour of: " + TITLE},
    {"role": "assistant", "content": '<think>the title says navy.</think><answer>{"colour": "navy"}</answer>'},
]


@pytest.fixture(scope="module")
def sources(tiny_model_dir, tmp_path_factory):
    """{"qwen2": dir, "llama": dir}: tiny models with every tensor random (no all-1 norms, all-0 biases)."""
    qwen2 = fill_random(tiny_model_dir("qwen2"), seed=1)
    llama = fill_random(make_tiny_llama(qwen2, tmp_path_factory.mktemp("gguf-src") / "llama"), seed=2)
    return {"qwen2": qwen2, "llama": llama}


@pytest.fixture(scope="module")
def ggufs(sources, tmp_path_factory):
    """{"f32" | "q8_0" | "llama": path}: the GGUF files, all in one folder."""
    out = tmp_path_factory.mktemp("gguf")
    return {
        "f32": write_tiny_gguf(sources["qwen2"], out / "tiny-f32.gguf"),
        "q8_0": write_tiny_gguf(sources["qwen2"], out / "tiny-q8_0.gguf", dtype="q8_0"),
        "llama": write_tiny_gguf(sources["llama"], out / "tiny-llama.gguf", arch="llama"),
    }


def _load_gguf(path):
    return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)


def _tokenizer_gguf(path):
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


# ---- model: config and weights -------------------------------------------------------------------


@pytest.mark.parametrize("kind, arch", [("f32", "qwen2"), ("llama", "llama")])
def test_f32_gguf_loads_the_source_config_and_exact_weights(sources, ggufs, kind, arch):
    source = AutoModelForCausalLM.from_pretrained(sources[arch])
    loaded = _load_gguf(ggufs[kind])

    assert type(loaded) is type(source)
    for key in (
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "head_dim", "max_position_embeddings", "vocab_size", "tie_word_embeddings",
    ):  # fmt: skip
        assert getattr(loaded.config, key, None) == getattr(source.config, key, None), key
    # GGUF metadata holds float32: 1e-6 comes back as 9.99999997e-07.
    assert loaded.config.rms_norm_eps == pytest.approx(source.config.rms_norm_eps, rel=1e-6)
    assert loaded.config.rope_parameters["rope_theta"] == source.config.rope_parameters["rope_theta"]

    expected, actual = source.state_dict(), loaded.state_dict()
    assert actual.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(actual[name], tensor), name
    # Tied model: the file has no output.weight, and transformers re-ties the head to the embedding.
    assert "output.weight" not in {t.name for t in gguf.GGUFReader(ggufs[kind]).tensors}
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()

    ids = torch.tensor([[1, 40, 300, 700, 1500, 2]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, source(ids).logits, atol=1e-6, rtol=0)


def test_llama_gguf_stores_q_and_k_in_llama_cpp_row_order(sources, ggufs):
    """The permutation is really applied on write (and undone by transformers on load, test above)."""
    source = AutoModelForCausalLM.from_pretrained(sources["llama"])
    tensors = {t.name: torch.from_numpy(t.data.copy()) for t in gguf.GGUFReader(ggufs["llama"]).tensors}
    config = source.config
    for proj, heads in (("q_proj", config.num_attention_heads), ("k_proj", config.num_key_value_heads)):
        hf = getattr(source.model.layers[0].self_attn, proj).weight.detach()
        stored = tensors[f"blk.0.attn_{proj[0]}.weight"]
        assert not torch.equal(stored, hf)
        assert torch.equal(stored, torch.from_numpy(_llama_permute(hf.numpy(), heads)))


def test_q8_0_gguf_is_smaller_and_within_one_quantisation_step(sources, ggufs):
    assert ggufs["q8_0"].stat().st_size < 0.5 * ggufs["f32"].stat().st_size
    source = AutoModelForCausalLM.from_pretrained(sources["qwen2"]).state_dict()
    loaded = _load_gguf(ggufs["q8_0"]).state_dict()
    assert loaded.keys() == source.keys()
    for name, tensor in source.items():
        if tensor.dim() == 1:  # norms and biases stay f32
            assert torch.equal(loaded[name], tensor), name
            continue
        # Q8_0: blocks of 32 share one fp16 scale max|x|/127; rounding costs at most half a step.
        step = tensor.abs().max() / 127
        assert (loaded[name] - tensor).abs().max() <= step, name
        assert not torch.equal(loaded[name], tensor), f"{name} was not quantised"


# ---- tokenizer and chat template ------------------------------------------------------------------


@pytest.mark.parametrize("kind, arch", [("f32", "qwen2"), ("llama", "llama")])
def test_gguf_tokenizer_encodes_and_decodes_like_the_source(sources, ggufs, kind, arch):
    source = AutoTokenizer.from_pretrained(sources[arch])
    loaded = _tokenizer_gguf(ggufs[kind])

    for text in (TITLE, "<|im_start|>user\nnavy<|im_end|>\n<think>x</think><answer>{}</answer>"):
        ids = loaded(text)["input_ids"]
        assert ids == source(text)["input_ids"], text
        assert loaded.decode(ids, skip_special_tokens=True) == source.decode(ids, skip_special_tokens=True)
    for token in ("<|im_start|>", "<|im_end|>", "<think>", "</answer>"):
        assert loaded.convert_tokens_to_ids(token) == source.convert_tokens_to_ids(token)
        assert len(loaded(token)["input_ids"]) == 1, token
    assert (loaded.eos_token, loaded.pad_token) == (source.eos_token, source.pad_token)
    # `<think>` is an added token that is not special: it survives skip_special_tokens (TRL rewards).
    assert "<think>" in loaded.decode(loaded("<think>x</think>")["input_ids"], skip_special_tokens=True)


def test_gguf_chat_template_survives(sources, ggufs):
    source = AutoTokenizer.from_pretrained(sources["qwen2"])
    loaded = _tokenizer_gguf(ggufs["f32"])

    assert loaded.chat_template == source.chat_template
    kwargs = dict(return_dict=True, return_assistant_tokens_mask=True)
    expected = source.apply_chat_template(MESSAGES, **kwargs)
    actual = loaded.apply_chat_template(MESSAGES, **kwargs)
    assert actual["input_ids"] == expected["input_ids"]
    # `{% generation %}` survived too: TRL's assistant_only_loss gets the same mask.
    assert actual["assistant_masks"] == expected["assistant_masks"] and any(expected["assistant_masks"])
    prompt = loaded.apply_chat_template(MESSAGES[:1], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")


# ---- hostile copies ---------------------------------------------------------------------------------


def test_with_architecture_is_a_well_formed_file_transformers_refuses(ggufs, tmp_path):
    copy = with_architecture(ggufs["f32"], tmp_path / "fake.gguf", "fakearch")

    original, reader = gguf.GGUFReader(ggufs["f32"]), gguf.GGUFReader(copy)
    assert reader.get_field("general.architecture").contents() == "fakearch"
    assert reader.get_field("fakearch.block_count").contents() == original.get_field("qwen2.block_count").contents()
    assert not any(name.startswith("qwen2.") for name in reader.fields)
    template = "tokenizer.chat_template"
    assert reader.get_field(template).contents() == original.get_field(template).contents()
    assert [t.name for t in reader.tensors] == [t.name for t in original.tensors]
    for new, old in zip(reader.tensors, original.tensors):
        assert new.tensor_type == old.tensor_type and (new.data == old.data).all(), new.name

    with pytest.raises(ValueError, match="fakearch"):
        _load_gguf(copy)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.99])
def test_truncate_copy_cuts_the_file_and_the_reader_fails(ggufs, tmp_path, fraction):
    whole = ggufs["f32"].read_bytes()
    cut = truncate_copy(ggufs["f32"], tmp_path / "cut.gguf", fraction)

    assert cut.read_bytes() == whole[: int(len(whole) * fraction)]
    with pytest.raises(ValueError):  # empty: "cannot mmap"; cut in the tensors: "cannot reshape"
        gguf.GGUFReader(cut)
    with pytest.raises(ValueError):
        truncate_copy(ggufs["f32"], tmp_path / "bad.gguf", 1.0)


def test_write_tiny_gguf_refuses_what_it_cannot_write(sources, tmp_path):
    with pytest.raises(ValueError, match="holds a 'qwen2' model"):
        write_tiny_gguf(sources["qwen2"], tmp_path / "x.gguf", arch="llama")
    with pytest.raises(ValueError, match="dtype 'q4_0'"):
        write_tiny_gguf(sources["qwen2"], tmp_path / "x.gguf", dtype="q4_0")
    with pytest.raises(ValueError, match="arch 'qwen3'"):
        write_tiny_gguf(sources["qwen2"], tmp_path / "x.gguf", arch="qwen3")
