"""Per-size shapes of the tiny models and the transformers config for each architecture.

| size  | text: hidden / layers / heads (kv) / mlp | vision: dim / depth / heads | image area -> merged image tokens |
| ----- | ---------------------------------------- | --------------------------- | --------------------------------- |
| tiny  | 64 / 2 / 4 (2) / 128                     | 32 / 2 / 2                  | 56x56 px -> 4x4 patches -> 4      |
| small | 256 / 4 / 4 (2) / 512                    | 128 / 2 / 4                 | 112x112 px -> 8x8 patches -> 16   |

Parameters with the built-in corpus (2,033 tokens -> 2,048 embedding rows, tied with the LM head;
`tiny_model.json` records the counts of each build):
tiny  qwen2 205,376 | qwen3 205,184 | qwen2_vl 293,248 (87,872 vision) | qwen2_5_vl 288,992 (83,616 vision);
small qwen2 2,887,936 | qwen3 2,886,400 | qwen2_vl 3,829,248 (941,312) | qwen2_5_vl 3,763,072 (875,136).

Images: Qwen's `smart_resize` scales an image to sides that are multiples of 28 (patch 14 x merge 2)
with an area in [min_pixels, max_pixels], aspect ratio kept. Those bounds are set half a 28-block
around the side above, (side - 14)**2 and (side + 14)**2, so a square image of any size becomes
exactly side x side (4 tokens tiny, 16 small) without the float rounding at the edges that
min = max = side**2 suffers (a 300x300 image would give 1 token); other shapes give a few tokens more
or less (tiny: 64x80 -> 6, 640x480 -> 4, 100x1000 -> 7; small: 640x480 -> 15).

Qwen2-VL / 2.5-VL use multimodal RoPE: `mrope_section` splits head_dim/2 rotary frequencies between
the temporal, height and width position ids and must sum to head_dim/2 (tiny: 16/2 = 8 -> [2, 3, 3];
small: 64/2 = 32 -> [8, 12, 12], Qwen's own 16:24:24 ratio for head_dim 128).
"""

from __future__ import annotations

import dataclasses

from moon_rl.errors import MoonError
from moon_rl.models.tiny.tokenizer import EOS_TOKEN, PAD_TOKEN, TOKEN_IDS

ARCHS = ("qwen2", "qwen3", "qwen2_vl", "qwen2_5_vl")
VL_ARCHS = ("qwen2_vl", "qwen2_5_vl")
SIZES = ("tiny", "small")


@dataclasses.dataclass(frozen=True)
class TinySpec:
    """Shape of one model size. `vocab_size` is the BPE target (the built-in corpus alone stops near
    2k, the rest is room for `--corpus` words); the embedding has len(tokenizer) rows rounded up to 64."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    vision_dim: int
    vision_depth: int
    vision_heads: int
    image_side: int  # a square image becomes image_side x image_side pixels (a multiple of 28)
    max_position_embeddings: int = 2048

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def min_pixels(self) -> int:
        return (self.image_side - 14) ** 2

    @property
    def max_pixels(self) -> int:
        return (self.image_side + 14) ** 2

    @property
    def image_tokens_square(self) -> int:
        return (self.image_side // 28) ** 2  # 28 = patch 14 x spatial merge 2

    @property
    def mrope_section(self) -> list[int]:
        half = self.head_dim // 2  # temporal gets the remainder, height = width
        return [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]


SPECS = {
    "tiny": TinySpec(64, 2, 4, 2, 128, 3072, vision_dim=32, vision_depth=2, vision_heads=2, image_side=56),
    "small": TinySpec(256, 4, 4, 2, 512, 4096, vision_dim=128, vision_depth=2, vision_heads=4, image_side=112),
}


def check_choice(arch: str, size: str) -> None:
    if arch not in ARCHS:
        raise MoonError(f"unknown tiny model arch {arch!r}; choose one of: {', '.join(ARCHS)}")
    if size not in SIZES:
        raise MoonError(f"unknown tiny model size {size!r}; choose one of: {', '.join(SIZES)}")


def model_config(arch: str, size: str, vocab_rows: int):
    """The transformers config for `arch` at `size` with an embedding of `vocab_rows` rows."""
    check_choice(arch, size)
    spec = SPECS[size]
    token_ids = {
        "bos_token_id": TOKEN_IDS[PAD_TOKEN],  # Qwen: bos = <|endoftext|>, never prepended by the tokenizer
        "eos_token_id": TOKEN_IDS[EOS_TOKEN],
        "pad_token_id": TOKEN_IDS[PAD_TOKEN],
    }
    text = dict(
        vocab_size=vocab_rows,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position_embeddings,
        dtype="float32",
        **token_ids,
    )
    if arch == "qwen2":
        from transformers import Qwen2Config

        return Qwen2Config(**text, tie_word_embeddings=True)
    if arch == "qwen3":
        from transformers import Qwen3Config

        # Qwen3Config defaults head_dim to 128 regardless of hidden_size.
        return Qwen3Config(**text, head_dim=spec.head_dim, tie_word_embeddings=True)

    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": spec.mrope_section}
    vl_ids = {
        "image_token_id": TOKEN_IDS["<|image_pad|>"],
        "video_token_id": TOKEN_IDS["<|video_pad|>"],
        "vision_start_token_id": TOKEN_IDS["<|vision_start|>"],
        "vision_end_token_id": TOKEN_IDS["<|vision_end|>"],
    }
    if arch == "qwen2_vl":
        from transformers import Qwen2VLConfig

        vision = dict(
            depth=spec.vision_depth,
            embed_dim=spec.vision_dim,
            hidden_size=spec.hidden_size,  # output of the patch merger = text hidden size
            mlp_ratio=4,
            num_heads=spec.vision_heads,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        )
        return Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **vl_ids)

    from transformers import Qwen2_5_VLConfig

    vision = dict(
        depth=spec.vision_depth,
        hidden_size=spec.vision_dim,
        intermediate_size=2 * spec.vision_dim,
        num_heads=spec.vision_heads,
        out_hidden_size=spec.hidden_size,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,  # pixels: 112 / 14 / 2 = 4x4 merged patches per attention window
        fullatt_block_indexes=[spec.vision_depth - 1],  # last block global, the others windowed
    )
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **vl_ids)
