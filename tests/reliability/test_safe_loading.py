"""Safe loading: weights only as safetensors, every `torch.load` with `weights_only=True`, no pickle, and
`trust_remote_code` off unless `--trust-remote-code` is given.

Two kinds of check:
- the source tree (moon_rl, reward_fns, data_prep, benchmarks) is parsed (AST, so comments and strings do
  not count) for unsafe calls;
- a real run's output is listed, and a real `--resume` is watched: HF Trainer keeps its own resume
  state in pickle-based files (optimizer.pt, scheduler.pt, rng_state.pth, and training_args.bin, which
  it writes but never reads back); transformers' trainer.py loads the first three with
  `torch.load(..., weights_only=True)` (`_load_optimizer_and_scheduler`, `_load_rng_state`), which this
  test observes rather than trusts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from reliability_support import ROOT, tiny_sft_args

SOURCE_DIRS = ("moon_rl", "reward_fns", "data_prep", "benchmarks")
HF_RESUME_FILES = {"training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth", "scaler.pt"}
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def unsafe_calls(path: Path, root: Path = ROOT) -> list[str]:
    """Unsafe loading in one source file, as 'file:line: what'."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        kwargs = {k.arg: k.value for k in node.keywords if k.arg}
        where = f"{path.relative_to(root)}:{node.lineno}"

        def const(key):
            value = kwargs.get(key)
            return value.value if isinstance(value, ast.Constant) else ("<expr>" if value is not None else None)

        if name == "torch.load" and const("weights_only") is not True:
            found.append(f"{where}: torch.load without weights_only=True")
        if name.split(".")[0] in ("pickle", "cPickle", "dill", "joblib", "cloudpickle") and name.split(".")[-1] in ("load", "loads"):
            found.append(f"{where}: {name}")
        if name in ("numpy.load", "np.load") and const("allow_pickle") is True:
            found.append(f"{where}: {name}(allow_pickle=True)")
        if const("trust_remote_code") is True:
            found.append(f"{where}: trust_remote_code=True hard-coded")
        if const("use_safetensors") is False or const("safe_serialization") is False:
            found.append(f"{where}: weights saved/loaded without safetensors")
        if name == "torch.save":
            found.append(f"{where}: torch.save (weights must be written with safetensors)")
    return found


def test_source_tree_has_no_unsafe_loading():
    files = [p for d in SOURCE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 30
    problems = [problem for path in files for problem in unsafe_calls(path)]
    assert problems == []


def test_the_scanner_finds_what_it_looks_for(tmp_path):
    """Guard against a scanner that silently matches nothing."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import torch, pickle\n"
        "torch.load('x.pt')\n"
        "torch.load('y.pt', weights_only=False)\n"
        "torch.load('z.pt', weights_only=True)\n"
        "pickle.loads(b'')\n"
        "AutoModel.from_pretrained('m', trust_remote_code=True)\n"
        "model.save_pretrained('o', safe_serialization=False)\n"
    )
    lines = sorted(int(p.split(":")[1]) for p in unsafe_calls(bad, root=tmp_path))
    assert lines == [2, 3, 5, 6, 7]


def test_run_outputs_are_safetensors_and_resume_loads_only_weights(cli, monkeypatch, tiny_model_dir, sft_text_dataset_dir, tmp_path):
    out = tmp_path / "run"
    args = tiny_sft_args(tiny_model_dir("qwen2"), sft_text_dataset_dir, out, "--max-steps", "1")
    assert cli(args).exit_code == 0

    files = [p for p in out.rglob("*") if p.is_file()]
    pickled = {p.relative_to(out).as_posix() for p in files if p.suffix in PICKLE_SUFFIXES}
    assert {Path(p).name for p in pickled} <= HF_RESUME_FILES, pickled
    weights = sorted(p.relative_to(out).as_posix() for p in files if p.suffix == ".safetensors")
    assert weights == [
        "adapter_model.safetensors",
        "checkpoint-1/adapter_model.safetensors",
        "checkpoint-1/moon_extras.safetensors",
        "moon_extras.safetensors",
    ]

    calls = []
    real_load = torch.load

    def watched_load(f, *a, **kw):
        calls.append((Path(str(f)).name, kw.get("weights_only")))
        return real_load(f, *a, **kw)

    monkeypatch.setattr(torch, "load", watched_load)
    resumed = cli([*args[: args.index("--max-steps") + 1], "2", *args[args.index("--max-steps") + 2 :], "--resume", "latest"])
    assert resumed.exit_code == 0, resumed.output
    names = {name for name, _ in calls}
    assert {"optimizer.pt", "scheduler.pt", "rng_state.pth"} <= names, calls
    assert "training_args.bin" not in names
    assert all(weights_only is True for _, weights_only in calls), calls


@pytest.mark.parametrize("command", ["sft", "grpo", "eval"])
def test_trust_remote_code_is_opt_in(command, cli, monkeypatch, tmp_path):
    """`--trust-remote-code` exists on each command that loads models, is off by default and reaches the
    model loader only when given."""
    import moon_rl.eval.run
    import moon_rl.trainers.grpo.run
    import moon_rl.trainers.sft.run

    seen = []
    summary = {"out": str(tmp_path), "global_step": 0, "interrupted": False, "first": {}, "last": {}}
    monkeypatch.setattr(moon_rl.trainers.sft.run, "run_sft", lambda cfg, margs, data, resume=None: seen.append(margs.trust_remote_code) or summary)
    monkeypatch.setattr(moon_rl.trainers.grpo.run, "run_grpo", lambda cfg, margs, data, resume=None: seen.append(margs.trust_remote_code) or summary)
    files = {"report": tmp_path / "report.md", "metrics": tmp_path / "metrics.json"}
    monkeypatch.setattr(moon_rl.eval.run, "run_eval", lambda cfg: seen.append(cfg.trust_remote_code) or {"files": files})

    assert "--trust-remote-code" in cli([command, "--help"]).output
    base = [command, "--model", tmp_path / "m", "--data", tmp_path / "d", "--out", tmp_path / "o"]
    for flag in ([], ["--trust-remote-code"]):
        result = cli([*base, *flag])
        assert result.exit_code == 0, result.output
    assert seen == [False, True]


def test_model_loading_passes_trust_remote_code_false(tiny_model_dir, monkeypatch):
    """No transformers `from_pretrained` made while loading gets trust_remote_code=True by default; the
    loader's own calls pass False explicitly (transformers' internal calls may omit it: off as well)."""
    import transformers

    from moon_rl.models.loading import ModelArgs, load_policy

    seen = []
    for cls_name in ("AutoConfig", "AutoTokenizer", "AutoProcessor", "AutoModelForCausalLM", "AutoModelForImageTextToText"):
        cls = getattr(transformers, cls_name)
        real = cls.from_pretrained

        def spy(*args, _real=real, _name=cls_name, **kwargs):
            seen.append((_name, kwargs.get("trust_remote_code", "<absent>")))
            return _real(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    load_policy(ModelArgs(model=str(tiny_model_dir("qwen2"))))
    load_policy(ModelArgs(model=str(tiny_model_dir("qwen2_5_vl"))))
    assert {"AutoConfig", "AutoTokenizer", "AutoProcessor", "AutoModelForCausalLM", "AutoModelForImageTextToText"} <= {n for n, _ in seen}
    assert all(value in (False, "<absent>") for _, value in seen), seen
    assert sum(value is False for _, value in seen) >= 5
