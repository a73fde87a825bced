"""SFT cold start with a contrastive embedding head (MOON3.0 step one).

- `config.py`: `MoonSFTConfig` (TRL `SFTConfig` + `EmbeddingArgs`), `build_sft_configs` (YAML / --set / flags).
- `trainer.py`: `MoonSFTTrainer` (TRL `SFTTrainer` + in-batch InfoNCE on the same forward pass).
- `run.py`: `run_sft` (validate data, load model, train, save) behind `moon-rl sft`.

The public names are exported, lazily, by `moon_rl.trainers`.
"""
