"""vLLM is an optional extra (`pip install 'moon-rl[vllm]'`, GPU only). This module checks for it without
importing it, so `import moon_rl` and every CPU command work on machines that do not have it.

- `vllm_available()`: is the package installed (found by importlib, never imported here)?
- `require_vllm(feature)`: raise `MissingExtraError` naming the flag and the pip command, before any model
  is loaded, when it is not.
- `serve(...)`: `moon-rl vllm-serve`, which delegates to TRL's `trl vllm-serve` script
  (`trl.scripts.vllm_serve.main`): the server that `--use-vllm --vllm-mode server` talks to.
"""

from __future__ import annotations

import importlib.util

from moon_rl.errors import MissingExtraError

VLLM_MODES = ("colocate", "server")


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def require_vllm(feature: str = "--use-vllm") -> None:
    """Fail up front (nothing loaded yet) when vLLM generation is asked for but vLLM is not installed."""
    if not vllm_available():
        raise MissingExtraError(
            feature, "vllm", "vLLM generation needs a CUDA GPU; without it, drop the flag to generate with transformers"
        )


def serve(model: str, host: str = "0.0.0.0", port: int = 8000, tensor_parallel_size: int = 1,
          gpu_memory_utilization: float = 0.9, max_model_len: int | None = None, dtype: str = "auto",
          extra_args: list[str] | None = None) -> None:
    """Start TRL's vLLM server for `model` (a hub id or local folder; for a moon-rl output, its base model:
    the trainer pushes the merged LoRA weights into the server at every step). Does not return."""
    require_vllm("moon-rl vllm-serve")
    from trl.scripts.vllm_serve import ScriptArguments, main

    args = ScriptArguments(
        model=model,
        host=host,
        port=port,
        tensor_parallel_size=tensor_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization,
        max_model_len=max_model_len,
        dtype=dtype,
    )
    main(args, extra_args or [])
