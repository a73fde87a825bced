"""Test-side GGUF files: a tiny moon-rl text model written as llama.cpp's `convert_hf_to_gguf.py` would.

Not a test module. No GGUF is downloaded in the default test run (issue 14), so the tests make their own
from a tiny local model folder (`moon-rl make-tiny-model --arch qwen2`, or `tiny_model_dir("qwen2")`):

    path = write_tiny_gguf(tiny_model_dir("qwen2"), tmp_path / "tiny.gguf")             # f32
    path = write_tiny_gguf(fill_random(tiny_model_dir("qwen2")), ...)  # no all-1 norms, all-0 biases
    path = write_tiny_gguf(model_dir, tmp_path / "tiny-q8.gguf", dtype="q8_0")           # quantised
    path = write_tiny_gguf(make_tiny_llama(model_dir, tmp_path / "llama"), out, arch="llama")
    AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)

and two hostile copies for the error paths: `truncate_copy` (a file cut short) and `with_architecture`
(a well-formed file of an architecture transformers cannot read from GGUF).

What transformers (5.x, `modeling_gguf_pytorch_utils.load_gguf_checkpoint`) reads back, and so what
is written here:
- the config from `<arch>.*` keys (`integrations/ggml.py: GGUF_CONFIG_MAPPING`); the vocabulary size
  from the number of tokens, which is why the list is padded to the embedding rows with `[PAD<i>]`
  tokens of type UNUSED, as llama.cpp pads;
- `tie_word_embeddings` is True exactly when there is no `output.weight`: a tied model writes none;
- tensor names through gguf's `TensorNameMap`, inverted; for `llama` only, it undoes the q/k row
  permutation llama.cpp applies (`LlamaTensorProcessor`), so that permutation is applied here for
  `llama` and not for `qwen2`;
- the tokenizer: `gpt2` (byte-level BPE) with `tokenizer.ggml.pre = "qwen2"` (the tiny tokenizer's
  split regex), tokens spelled in the byte alphabet as in tokenizer.json, CONTROL tokens become special
  added tokens and USER_DEFINED ones (`<think>` ...) plain added tokens.
Not covered: `qwen3` (transformers maps no head_dim for it and falls back to 128) and the VL archs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

ARCHS = ("qwen2", "llama")  # GGUF architecture names this writer produces
DTYPES = ("f32", "q8_0")
# The tiny tokenizer uses Qwen2's split regex (moon_rl/models/tiny/tokenizer.py); llama.cpp names it so.
PRE_TOKENIZER = "qwen2"


def write_tiny_gguf(model_dir: Path, out_file: Path, *, arch: str = "qwen2", dtype: str = "f32") -> Path:
    """Write the text model in `model_dir` (config.json, model.safetensors, tokenizer.json) to `out_file`.

    `arch` is the GGUF architecture and must be the folder's `model_type` (`qwen2`, or `llama` for a
    `make_tiny_llama` folder). `dtype="q8_0"` quantises the 2-D weights (1-D norms and biases stay f32,
    as llama.cpp keeps them). Returns `out_file`.
    """
    import gguf
    from safetensors.torch import load_file

    model_dir, out_file = Path(model_dir), Path(out_file)
    if arch not in ARCHS:
        raise ValueError(f"write_tiny_gguf: arch {arch!r} not supported; choose one of {ARCHS}")
    if dtype not in DTYPES:
        raise ValueError(f"write_tiny_gguf: dtype {dtype!r} not supported; choose one of {DTYPES}")
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config["model_type"] != arch:
        raise ValueError(f"write_tiny_gguf: {model_dir} holds a {config['model_type']!r} model, not {arch!r}")

    writer = gguf.GGUFWriter(out_file, arch)
    _write_config(writer, config, dtype)
    _write_tokenizer(writer, model_dir, config)

    state = load_file(model_dir / "model.safetensors")
    names = gguf.get_tensor_name_map(_model_arch(arch), config["num_hidden_layers"])
    for hf_name, tensor in state.items():
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue  # tied: no output.weight, which is how transformers knows to re-tie
        base, suffix = hf_name.rsplit(".", 1)
        gguf_name = names.get_name(base)
        if gguf_name is None:
            raise ValueError(f"write_tiny_gguf: no GGUF name for tensor {hf_name!r} of {arch}")
        data = tensor.float().numpy()
        if arch == "llama" and base.endswith(("self_attn.q_proj", "self_attn.k_proj")):
            heads = config["num_attention_heads"] if base.endswith("q_proj") else config["num_key_value_heads"]
            data = _llama_permute(data, heads)
        _add_tensor(writer, f"{gguf_name}.{suffix}", data, dtype)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file


def make_tiny_llama(qwen2_dir: Path, out_dir: Path, seed: int = 0) -> Path:
    """A random LlamaForCausalLM with the shapes and tokenizer of the tiny qwen2 model in `qwen2_dir`.

    SmolLM2 (the real model of issue 14) is a Llama; this gives the `arch="llama"` path (with its q/k
    permutation) a source model. Llama has no q/k/v biases, so the qwen2 weights cannot be reused.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    qwen2_dir, out_dir = Path(qwen2_dir), Path(out_dir)
    source = json.loads((qwen2_dir / "config.json").read_text(encoding="utf-8"))
    keys = (
        "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "bos_token_id", "eos_token_id",
        "pad_token_id",
    )  # fmt: skip
    config = LlamaConfig(
        **{k: source[k] for k in keys},
        head_dim=source["hidden_size"] // source["num_attention_heads"],
        rope_parameters=source.get("rope_parameters"),
        tie_word_embeddings=True,
        dtype="float32",
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        if (qwen2_dir / name).exists():
            shutil.copy2(qwen2_dir / name, out_dir / name)
    return out_dir


def fill_random(model_dir: Path, seed: int = 0) -> Path:
    """Overwrite every tensor in `model_dir/model.safetensors` with random values (std 0.02, seeded).

    A freshly built model has norms of exactly 1 and biases of exactly 0, so a test comparing weights
    would not notice one norm or bias loaded into another's place; after this every tensor is distinct.
    """
    import torch
    from safetensors.torch import load_file, save_file

    path = Path(model_dir) / "model.safetensors"
    generator = torch.Generator().manual_seed(seed)
    state = load_file(path)
    state = {name: torch.randn(t.shape, generator=generator, dtype=t.dtype) * 0.02 for name, t in state.items()}
    save_file(state, path, metadata={"format": "pt"})
    return Path(model_dir)


def truncate_copy(src: Path, dst: Path, keep_fraction: float) -> Path:
    """Copy the first `keep_fraction` (0 <= f < 1) of the bytes of `src` to `dst`: a download cut short."""
    if not 0 <= keep_fraction < 1:
        raise ValueError(f"truncate_copy: keep_fraction must be in [0, 1), got {keep_fraction}")
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep_fraction)])
    return Path(dst)


def with_architecture(src: Path, dst: Path, arch_name: str) -> Path:
    """Copy the GGUF `src` to `dst` with `general.architecture = arch_name` (and the `<arch>.*` keys
    renamed to match), tensors unchanged: a well-formed file of another architecture. Rewritten with
    GGUFWriter, as gguf's own `gguf_new_metadata.py` does, rather than patched in place."""
    import gguf

    reader = gguf.GGUFReader(src)
    old_arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    writer = gguf.GGUFWriter(dst, arch_name)  # writes general.architecture itself
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # the new value, and the header's virtual fields
        name = field.name
        if name.startswith(f"{old_arch}."):
            name = f"{arch_name}.{name[len(old_arch) + 1 :]}"
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), value_type, sub_type=sub_type)
    for tensor in reader.tensors:
        data = tensor.data
        writer.add_tensor_info(tensor.name, data.shape, data.dtype, data.nbytes, tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()
    return Path(dst)


# ---- pieces of write_tiny_gguf -------------------------------------------------------------------


def _model_arch(arch: str):
    import gguf

    return next(key for key, name in gguf.MODEL_ARCH_NAMES.items() if name == arch)


def _write_config(writer, config: dict, dtype: str) -> None:
    import gguf

    rope = config.get("rope_parameters") or {}
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    writer.add_name("moon-rl tiny " + config["model_type"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(rope.get("rope_theta", config.get("rope_theta", 10000.0)))
    writer.add_rope_dimension_count(head_dim)  # llama: read back as head_dim; qwen2: ignored
    file_type = gguf.LlamaFileType.MOSTLY_Q8_0 if dtype == "q8_0" else gguf.LlamaFileType.ALL_F32
    writer.add_file_type(file_type)


def _write_tokenizer(writer, model_dir: Path, config: dict) -> None:
    """Vocabulary, merges, token types, special ids and chat template of the folder's tokenizer.json."""
    import gguf

    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    id_to_token = {i: t for t, i in spec["model"]["vocab"].items()}
    types = {i: gguf.TokenType.NORMAL for i in id_to_token}
    for added in spec["added_tokens"]:
        id_to_token[added["id"]] = added["content"]
        # llama.cpp: special added tokens are CONTROL, the others (<think>, <answer>) USER_DEFINED
        types[added["id"]] = gguf.TokenType.CONTROL if added["special"] else gguf.TokenType.USER_DEFINED
    rows = config["vocab_size"]  # embedding rows, rounded up past the vocabulary
    if max(id_to_token) >= rows:
        raise ValueError(f"write_tiny_gguf: token id {max(id_to_token)} does not fit {rows} embedding rows")
    tokens = [id_to_token.get(i, f"[PAD{i}]") for i in range(rows)]
    token_types = [types.get(i, gguf.TokenType.UNUSED) for i in range(rows)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]

    tok_config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    template_file = model_dir / "chat_template.jinja"
    template = template_file.read_text(encoding="utf-8") if template_file.exists() else tok_config.get("chat_template")
    token_id = {t: i for i, t in id_to_token.items()}

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(PRE_TOKENIZER)
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges(merges)
    if config.get("bos_token_id") is not None:
        writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(token_id[tok_config["eos_token"]])
    if tok_config.get("pad_token") is not None:
        writer.add_pad_token_id(token_id[tok_config["pad_token"]])
    writer.add_add_bos_token(False)  # Qwen-style: bos is never prepended
    if template:
        writer.add_chat_template(template)


def _llama_permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's q/k row order for rotary pairs (`convert_hf_to_gguf.py: LlamaModel.permute`): within
    each head, rows [first halves..., second halves...] become interleaved pairs."""
    rows = weights.shape[0]  # (heads * head_dim, hidden)
    pairs = weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:])  # (heads, 2, head_dim / 2, hidden)
    return pairs.swapaxes(1, 2).reshape(weights.shape)


def _add_tensor(writer, name: str, data: np.ndarray, dtype: str) -> None:
    import gguf

    if dtype == "q8_0" and data.ndim == 2:
        qtype = gguf.GGMLQuantizationType.Q8_0
        writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    else:
        writer.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))
