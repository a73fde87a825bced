"""The policy models: `loading` (a base model, an adapter or a moon-rl run -> the policy, its processor and LoRA
config), `gguf` (GGUF conversion), `known` (the pretrained models moon-rl can obtain from the package registry,
with no model hub) and `tiny` (the tiny random-init models tests and the demo build). Importing this package
imports no torch."""

from __future__ import annotations

from moon_rl.lazy import lazy_exports

_EXPORTS = {
    "ModelArgs": "moon_rl.models.loading",
    "load_policy": "moon_rl.models.loading",
    "lora_config": "moon_rl.models.loading",
    "load_for_training": "moon_rl.models.loading",
    "make_tiny_model": "moon_rl.models.tiny",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports("moon_rl.models", _EXPORTS)
