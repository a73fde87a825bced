"""`python -m moon_rl ...` under FSDP on CPU: the entry point `accelerate launch` runs for the FSDP rows of
benchmarks/multiprocess_fsdp.py and tests/moon_rl/test_fsdp_multiprocess.py.

    accelerate launch --config_file configs/accelerate/fsdp_cpu_2proc.yaml benchmarks/fsdp_cpu_worker.py \
        sft --model runs/models/smollm2-135m-instruct --data DATA --out OUT ...
    accelerate launch --config_file configs/accelerate/fsdp_cpu_2proc.yaml benchmarks/fsdp_cpu_worker.py probe

Why a worker and not `-m moon_rl`: accelerate 1.16 never runs FSDP on a CPU. `AcceleratorState.__init__`
turns an FSDP launch into `DistributedType.FSDP` only when the processes are MULTI_GPU / NPU / XPU / ...;
with `use_cpu` they are MULTI_CPU and the FSDP plugin is dropped without a word (the model is wrapped in
DistributedDataParallel), and without `use_cpu` on a machine with no accelerator each process trains alone
(DistributedType.NO). PyTorch itself shards fine on CPU over gloo (`fully_shard`), so this worker promotes
MULTI_CPU to FSDP when accelerate built an FSDP plugin, and nothing else; from there accelerate's own FSDP2
code path runs (`fsdp2_prepare_model`, full state dict on save), as it does on GPUs.
`MOON_FSDP_SHIM=0` turns the promotion off (accelerate as shipped). `probe` prepares a two-layer model and
prints what accelerate made of the launch, one `fsdp-worker:` JSON line per process.
"""

from __future__ import annotations

import json
import os
import runpy
import sys

TAG = "fsdp-worker:"


def promote_cpu_fsdp() -> None:
    """Patch `AcceleratorState.__init__`: MULTI_CPU + an FSDP plugin -> DistributedType.FSDP (see module docstring)."""
    import accelerate.state as state
    from accelerate.utils import DistributedType

    original = state.AcceleratorState.__init__

    def init(self, *args, fsdp_plugin=None, **kwargs):
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if self.distributed_type == DistributedType.MULTI_CPU and fsdp_plugin is not None:
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin
            state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    state.AcceleratorState.__init__ = init


def report_prepared_model() -> None:
    """Print, once per process, the model `Accelerator.prepare` returned (FSDP2 classes are `FSDP<Name>`, their
    parameters DTensors; DDP's is `DistributedDataParallel`)."""
    import torch
    from accelerate import Accelerator

    original = Accelerator.prepare

    def prepare(self, *args, **kwargs):
        prepared = original(self, *args, **kwargs)
        models = [m for m in (prepared if isinstance(prepared, tuple | list) else (prepared,)) if isinstance(m, torch.nn.Module)]
        if models and not getattr(self, "_moon_reported", False):
            self._moon_reported = True
            params = list(models[0].parameters())
            line = json.dumps({
                "rank": self.process_index, "world_size": self.num_processes,
                "distributed_type": str(self.distributed_type).split(".")[-1], "model_class": type(models[0]).__name__,
                "dtensor_params": sum(type(p).__name__ == "DTensor" for p in params), "params": len(params),
                "fsdp_units": sorted({type(m).__name__ for m in models[0].modules() if type(m).__name__.startswith("FSDP")}),
                "fsdp_unit_count": sum(type(m).__name__.startswith("FSDP") for m in models[0].modules()),
            })
            os.write(1, f"{TAG} {line}\n".encode())  # one write: the two processes' lines never interleave
        return prepared

    Accelerator.prepare = prepare


def probe() -> None:
    import torch
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    accelerator.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))


def main() -> None:
    if os.environ.get("MOON_FSDP_SHIM", "1") != "0":
        promote_cpu_fsdp()
    report_prepared_model()
    if sys.argv[1:2] == ["probe"]:
        probe()
        return
    sys.argv = ["moon-rl", *sys.argv[1:]]
    runpy.run_module("moon_rl", run_name="__main__")


if __name__ == "__main__":
    main()
