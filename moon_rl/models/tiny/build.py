"""Build a randomly initialised tiny Qwen model + tokenizer/processor into a folder.

    moon-rl make-tiny-model --arch qwen2_5_vl --out runs/tiny-vl [--size small] [--seed 0]

or `make_tiny_model("qwen2_5_vl", "runs/tiny-vl")`. The folder loads offline with
`AutoModelForCausalLM` (qwen2, qwen3) or `AutoModelForImageTextToText` (qwen2_vl, qwen2_5_vl) and
`AutoTokenizer` / `AutoProcessor`, and TRL's trainers accept it like a hub checkpoint. It also holds
`tiny_model.json`: what was built (arch, size, seed, parameter counts, image token count).

Same arch/size/seed/corpus -> identical weights and tokenizer files (the seed only affects weights;
the tokenizer depends on the corpus alone, so all tiny models share token ids).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from moon_rl.errors import MoonError
from moon_rl.models.tiny.configs import SPECS, VL_ARCHS, check_choice, model_config
from moon_rl.models.tiny.tokenizer import CHAT_TEMPLATE, EOS_TOKEN, PAD_TOKEN, TOKEN_IDS, train_tokenizer

INFO_FILE = "tiny_model.json"
# Top-level files a previous build may have written; `force=True` deletes only these.
_ARTIFACT_PATTERNS = ("*.safetensors", "*.json", "*.jinja", "merges.txt", "vocab.json")


def make_tiny_model(
    arch: str,
    out_dir: str | Path,
    size: str = "tiny",
    seed: int = 0,
    extra_corpus: Iterable[str] | None = None,
    force: bool = False,
) -> Path:
    """Write a random `arch` model of `size` and its tokenizer (+ processor for VL archs) to `out_dir`.

    `extra_corpus`: more texts (e.g. catalog titles) for the BPE tokenizer, on top of the built-in
    product vocabulary. Refuses a non-empty `out_dir` unless `force`, which first deletes the files a
    previous build wrote there (*.safetensors, *.json, *.jinja, vocab/merges) and keeps anything else.
    Returns `out_dir` as a Path.
    """
    import torch
    from tqdm.auto import tqdm

    check_choice(arch, size)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise MoonError(f"--out {out} is a file; give a folder path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise MoonError(f"--out {out} is not empty; choose a new folder or pass --force to overwrite it")

    spec = SPECS[size]
    with tqdm(total=3, desc=f"tiny {arch} ({size})", disable=None) as bar:
        bar.set_postfix_str("tokenizer")
        tokenizer = train_tokenizer(spec.vocab_size, extra_corpus)
        bar.update()

        bar.set_postfix_str("model")
        vocab_rows = -(-len(tokenizer) // 64) * 64  # ceil to a multiple of 64
        config = model_config(arch, size, vocab_rows)
        # fork_rng: seed the init without touching the caller's global RNG state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _model_class(arch)(config)  # float32, weights drawn by the model's _init_weights
        model.generation_config = _generation_config()
        bar.update()

        bar.set_postfix_str("save")
        out.mkdir(parents=True, exist_ok=True)
        if force:
            _remove_previous_build(out)
        model.save_pretrained(out)
        if arch in VL_ARCHS:
            _processor(arch, tokenizer, spec.min_pixels, spec.max_pixels).save_pretrained(out)
        else:
            tokenizer.save_pretrained(out)
        info = {
            "arch": arch,
            "size": size,
            "seed": seed,
            "vocab_size": len(tokenizer),
            "embedding_rows": vocab_rows,
            "parameters": _param_counts(model),
            "special_token_ids": dict(TOKEN_IDS),
        }
        if arch in VL_ARCHS:
            info["image_pixels"] = {"min": spec.min_pixels, "max": spec.max_pixels}
            info["image_tokens_square"] = spec.image_tokens_square
        (out / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        bar.update()
    return out


def _model_class(arch: str):
    import transformers

    return {
        "qwen2": transformers.Qwen2ForCausalLM,
        "qwen3": transformers.Qwen3ForCausalLM,
        "qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
        "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
    }[arch]


def _generation_config():
    from transformers import GenerationConfig

    # Like Qwen instruct checkpoints: stop on <|im_end|> or <|endoftext|>.
    return GenerationConfig(
        bos_token_id=TOKEN_IDS[PAD_TOKEN],
        eos_token_id=[TOKEN_IDS[EOS_TOKEN], TOKEN_IDS[PAD_TOKEN]],
        pad_token_id=TOKEN_IDS[PAD_TOKEN],
    )


def _processor(arch: str, tokenizer, min_pixels: int, max_pixels: int):
    """Qwen processor whose image/video processors resize frames to [min_pixels, max_pixels] (configs.py)."""
    import transformers
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    image_processor = transformers.Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels)
    video_processor = Qwen2VLVideoProcessor(min_pixels=min_pixels, max_pixels=max_pixels)
    cls = transformers.Qwen2VLProcessor if arch == "qwen2_vl" else transformers.Qwen2_5_VLProcessor
    return cls(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def _param_counts(model) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())  # tied embeddings counted once
    vision = sum(p.numel() for n, p in model.named_parameters() if ".visual." in f".{n}")
    return {"total": total, "text": total - vision, "vision": vision}


def _remove_previous_build(out: Path) -> None:
    for pattern in _ARTIFACT_PATTERNS:
        for path in out.glob(pattern):
            if path.is_file():
                path.unlink()
