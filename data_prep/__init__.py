"""Turning product catalogs into moon-rl training and evaluation data.

- `schema`: the product record schema and catalog folder layout every loader writes and every trainer reads.
- `synth` (+ `synth_render`, `taxonomy`): `moon-rl data synth`, a synthetic MBE-like catalog.
- `formats`: the prompt and `<think>...</think><answer>{...}</answer>` trace formats.
- `tasks`: `moon-rl data prepare --task sft|grpo`, catalog split -> `datasets` dataset on disk.
- `sources`: `moon-rl data prepare --source ...`, raw catalogs -> schema catalog.

See data_prep/README.md for the formats and commands. Submodules are imported on use so that importing
the package stays cheap.
"""
