"""MOON3.0's two model add-ons, each its own small module: modality fusion pooling and fine-grained
residual enhancement. Both are optional (config flags) and trained alongside the LoRA adapter."""

from moon_rl.modules.fusion import ModalityFusion
from moon_rl.modules.residual import FineGrainedResidual

__all__ = ["ModalityFusion", "FineGrainedResidual"]
