"""Where a model to load lives, and what a run recorded about it: the folder `moon_rl.load(path)` reads (a run's final
artifacts, else its newest complete checkpoint), the run's `moon_rl.json`, and the check that an adapter fits the
base model it is loaded onto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from moon_rl.errors import MoonError
from moon_rl.models.loading import RUN_INFO

RUN_META = RUN_INFO  # moon_rl.json, written by the trainers (moon_rl.models.loading.write_run_info)


def resolve_model_dir(path: str | Path) -> Path:
    """The folder to load: `path` itself, or for a run folder without final artifacts its newest complete checkpoint."""
    from moon_rl.trainers.checkpoints import final_save_unfinished, latest_complete_checkpoint, list_checkpoints

    from moon_rl.models.gguf import materialize

    path = Path(materialize(str(path))).expanduser()
    if not path.is_dir():
        raise MoonError(f"model path {path} does not exist (give a run folder, a checkpoint-N folder, an export or a base model folder)")
    unfinished = final_save_unfinished(path)
    if not unfinished and ((path / "adapter_config.json").is_file() or (path / "config.json").is_file()):
        return path
    why = "its final save did not finish" if unfinished else "no final model in the run folder"
    latest = latest_complete_checkpoint(path)
    if latest is not None:
        print(f"{path}: {why}; using its newest complete checkpoint {latest.name}")
        return latest
    found = [p.name for _, p in list_checkpoints(path)]
    hint = f" (only incomplete checkpoints: {found})" if found else ""
    if unfinished:
        raise MoonError(f"{path}: its final save did not finish and it has no complete checkpoint{hint}; resume the run with --resume latest or train again")
    raise MoonError(f"{path}: no adapter_config.json or config.json{hint}; pass a finished run, a checkpoint-N folder, an export or a model folder")


def read_run_meta(path: str | Path) -> dict[str, Any]:
    """`moon_rl.json` of a run/export (also looked up one level up, for checkpoint-N folders); {} when absent."""
    for candidate in (Path(path) / RUN_META, Path(path).parent / RUN_META):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise MoonError(f"{candidate}: not valid JSON ({err.msg} at line {err.lineno})") from None
    return {}


def check_adapter_fits(model, model_dir: Path) -> None:
    """PEFT only warns when adapter tensors find no module in the base (a different architecture); fail instead."""
    from safetensors import safe_open

    file = model_dir / "adapter_model.safetensors"
    if not file.is_file():
        return
    with safe_open(str(file), framework="pt") as fh:
        saved = [k for k in fh.keys() if ".lora_" in k]
    names = {n for n, _ in model.named_parameters()}
    # Saved: "...q_proj.lora_A.weight"; in the model: "...q_proj.lora_A.default.weight".
    lost = [k for k in saved if k not in names and "{0}.default.{2}".format(*k.rpartition(".")) not in names]
    if lost:
        raise MoonError(
            f"{model_dir}: {len(lost)} of {len(saved)} adapter tensors have no matching module in the base model "
            f"(e.g. {lost[0]}): wrong base model; pass base_model= / --base-model with the model it was trained on"
        )
