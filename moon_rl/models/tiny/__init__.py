"""Tiny, randomly initialised Qwen models built locally (no hub) for tests, the demo and benchmarks.

`make_tiny_model(arch, out_dir, size="tiny", seed=0)` writes model + tokenizer (+ processor for the VL
archs) to a folder that `from_pretrained` loads offline. See `build.py` (what is written),
`configs.py` (shapes per size, image token counts), `tokenizer.py` (BPE, special tokens, chat
template) and `vocabulary.py` (the built-in product corpus).
"""

from moon_rl.models.tiny.build import INFO_FILE, make_tiny_model
from moon_rl.models.tiny.configs import ARCHS, SIZES, SPECS, VL_ARCHS
from moon_rl.models.tiny.tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS, TOKEN_IDS

__all__ = [
    "ARCHS",
    "CHAT_TEMPLATE",
    "INFO_FILE",
    "SIZES",
    "SPECIAL_TOKENS",
    "SPECS",
    "TOKEN_IDS",
    "VL_ARCHS",
    "make_tiny_model",
]
