"""Joint GRPO + InfoNCE (MOON3.0 step two): reasoning rollouts scored by rewards, and their pooled
embeddings trained contrastively in the same forward pass.

- `config.py`: `MoonGRPOConfig` (TRL `GRPOConfig` + `EmbeddingArgs` + reward specs), `build_grpo_configs`.
- `trainer.py`: `MoonGRPOTrainer` (TRL `GRPOTrainer` + contrastive term; which methods it overrides and why).
- `rollout_embeddings.py`: no-grad rollout embeddings for rewards and for the contrastive candidate bank.
- `run.py`: `run_grpo` (validate data, resolve rewards, load model, train, save) behind `moon-rl grpo`.

The public names are exported, lazily, by `moon_rl.trainers`.
"""
