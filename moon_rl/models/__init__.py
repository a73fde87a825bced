"""Pretrained models without a model hub: GGUF conversion (`gguf`) and the models moon-rl can obtain from the
package registry (`known`). Importing this package imports no torch."""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "ModelArgs": "moon_rl.models.loading",
    "load_policy": "moon_rl.models.loading",
    "lora_config": "moon_rl.models.loading",
    "load_for_training": "moon_rl.models.loading",
    "make_tiny_model": "moon_rl.models.tiny",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'moon_rl.models' has no attribute {name!r}")
