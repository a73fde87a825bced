"""`moon-rl data prepare --task pairwise --pairs FILE`: A-vs-B choices (Creative4U: which creative is better).

    moon-rl data prepare --task pairwise --pairs pairs/train.jsonl --out data/pairs   # data/pairs/{sft,grpo}
    moon-rl sft  --model M --data data/pairs/sft --out runs/pw-sft --set contrastive_weight=0
    moon-rl grpo --model runs/pw-sft --data data/pairs/grpo --out runs/pw-grpo --reward pairwise_choice \
        --set contrastive_weight=0
    moon-rl eval --model runs/pw-grpo --data pairs/test.jsonl --tasks pairwise --out runs/pw-grpo/eval

The pairs file is JSONL, one pair a line:

    {"id": "p1", "a": {"image": "img/a.jpg"} or {"text": "..."}, "b": {...}, "better": "a" or "b",
     "context": "optional product or user-interest text", "rationale": "optional reasoning for SFT"}

Image paths are relative to the pairs file and must stay inside its folder. Each pair becomes one row of the
SFT dataset (OUT/sft) and of the GRPO dataset (OUT/grpo, the same rows without `completion`):

    prompt      one user turn: the candidates' images (A's first), then the instruction, the context and the
                text candidates; the model thinks in <think></think> and answers A or B in <answer></answer>
    completion  the SFT target: <think>rationale</think><answer>A|B</answer> (a template rationale without one)
    images      the candidates' images, A's before B's (only when some pair has an image)
    id, group_id  the pair id (a pair has no contrastive positive: train with contrastive_weight=0)
    title       the context, or "pair <id>" without one
    winner      "A" or "B": the `pairwise_choice` reward's column (reward_fns/pairwise.py)

Every bad line fails naming the file, the line and the pair id; `on_error="skip"` drops it and counts it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from data_prep.errors import DataPrepError
from data_prep.formats import user_message

LABELS = ("A", "B")
PAIRWISE_INSTRUCTION = (
    "Two candidates, A and B, are shown for the context below. Decide which one is better: compare them inside "
    "<think></think>, then answer with the letter of the better one, A or B, inside <answer></answer>."
)


@dataclasses.dataclass
class Pair:
    id: str
    a: dict[str, str]  # {"image": path relative to the file} or {"text": ...}
    b: dict[str, str]
    better: str  # "A" or "B"
    context: str | None = None
    rationale: str | None = None
    line: int = 0

    def candidates(self) -> list[tuple[str, dict[str, str]]]:
        return [("A", self.a), ("B", self.b)]


def _candidate(value: Any, key: str, loc: str) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("image", "text"):
        raise DataPrepError(f"{loc}: field '{key}': expected {{\"image\": \"rel/path.jpg\"}} or {{\"text\": \"...\"}}, got {value!r:.80}")
    kind, content = next(iter(value.items()))
    if not isinstance(content, str) or not content.strip():
        raise DataPrepError(f"{loc}: field '{key}.{kind}': expected a non-empty string, got {content!r:.60}")
    return {kind: content.strip()}


def parse_pair(raw: Any, path: Path, line: int) -> Pair:
    loc = f"{path}:{line}"
    if not isinstance(raw, dict):
        raise DataPrepError(f"{loc}: expected a JSON object, got {type(raw).__name__}")
    pid = raw.get("id")
    if isinstance(pid, int) and not isinstance(pid, bool):
        pid = str(pid)
    if not isinstance(pid, str) or not pid.strip():
        raise DataPrepError(f"{loc}: field 'id': expected a non-empty string, got {pid!r:.60}")
    loc = f"{loc} (id={pid!r})"
    unknown = sorted(set(raw) - {"id", "a", "b", "better", "context", "rationale"})
    if unknown:
        raise DataPrepError(f"{loc}: unknown field(s) {unknown}; a pair has id, a, b, better, context, rationale")
    better = raw.get("better")
    if not isinstance(better, str) or better.strip().upper() not in LABELS:
        raise DataPrepError(f"{loc}: field 'better': expected \"a\" or \"b\", got {better!r:.60}")
    for key in ("context", "rationale"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise DataPrepError(f"{loc}: field '{key}': expected a string, got {raw[key]!r:.60}")
    return Pair(
        id=pid.strip(),
        a=_candidate(raw.get("a"), "a", loc),
        b=_candidate(raw.get("b"), "b", loc),
        better=better.strip().upper(),
        context=(raw.get("context") or "").strip() or None,
        rationale=(raw.get("rationale") or "").strip() or None,
        line=line,
    )


def image_file(pair: Pair, rel: str, pairs_file: Path) -> Path:
    """The image a candidate names, resolved against the pairs file's folder (and kept inside it)."""
    root = pairs_file.parent.resolve()
    path = (root / rel).resolve()
    loc = f"{pairs_file}:{pair.line} (id={pair.id!r})"
    if not path.is_relative_to(root):
        raise DataPrepError(f"{loc}: image {rel!r} leaves the pairs file's folder {root}; keep images under it")
    if not path.is_file():
        raise DataPrepError(f"{loc}: image {rel!r} not found (looked for {path})")
    return path


def read_pairs(pairs_file: str | Path, on_error: str = "stop") -> tuple[list[Pair], list[str]]:
    """(pairs, skip reasons) of a pairs file; every image is checked to stay inside the file's folder and to
    decode fully under the pixel limit (`data_prep.images.open_image_checked`)."""
    from data_prep.images import open_image_checked

    pairs_file = Path(pairs_file)
    if not pairs_file.is_file():
        raise DataPrepError(f"--pairs {pairs_file}: no such file (a JSONL file of pairs; see data_prep/pairwise.py)")
    pairs, skipped, seen = [], [], {}
    with open(pairs_file, encoding="utf-8") as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                try:
                    raw = json.loads(text)
                except json.JSONDecodeError as err:
                    raise DataPrepError(f"{pairs_file}:{line}: invalid JSON: {err.msg} (column {err.colno})") from None
                pair = parse_pair(raw, pairs_file, line)
                if pair.id in seen:
                    raise DataPrepError(f"{pairs_file}:{line} (id={pair.id!r}): duplicate id, first at line {seen[pair.id]}")
                for _, cand in pair.candidates():
                    if "image" in cand:
                        path = image_file(pair, cand["image"], pairs_file)
                        try:
                            open_image_checked(path).close()
                        except DataPrepError as err:  # corrupt, truncated, not an image, a decompression bomb
                            why = str(err).removeprefix(f"{path}: ")
                            raise DataPrepError(f"{pairs_file}:{line} (id={pair.id!r}): image {path} does not open ({why})") from None
            except DataPrepError as err:
                if on_error == "stop":
                    raise DataPrepError(f"{err} (fix the line, or pass --on-error skip)") from None
                skipped.append(str(err))
                continue
            seen[pair.id] = line
            pairs.append(pair)
    if not pairs:
        raise DataPrepError(f"{pairs_file}: no pairs" + (f"; all {len(skipped)} lines were bad, first: {skipped[0]}" if skipped else ""))
    return pairs, skipped


def prompt_text(pair: Pair) -> str:
    lines = [PAIRWISE_INSTRUCTION, ""]
    if pair.context:
        lines.append(f"Context: {pair.context}")
    n_image = 0
    for label, cand in pair.candidates():
        if "image" in cand:
            n_image += 1
            lines.append(f"Candidate {label}: image {n_image}")
        else:
            lines.append(f"Candidate {label}: {cand['text']}")
    return "\n".join(lines)


def trace(pair: Pair) -> str:
    """The SFT target: the pair's rationale (or a template one), then the letter."""
    why = pair.rationale or (
        f"I compare candidate A and candidate B{' against the context' if pair.context else ''}; "
        f"candidate {pair.better} is the better one."
    )
    return f"<think>\n{why}\n</think>\n<answer>{pair.better}</answer>"


def pair_prompt(pair: Pair, pairs_file: Path, with_images: bool = True) -> tuple[list[dict[str, Any]], list[Path]]:
    """(messages, image files) for one pair: the layout the dataset rows and `moon-rl eval --tasks pairwise` share."""
    paths = [image_file(pair, c["image"], pairs_file) for _, c in pair.candidates() if "image" in c] if with_images else []
    return [user_message(prompt_text(pair), len(paths), parts=with_images)], paths


def _features(with_images: bool):
    from datasets import Features, Image, List, Value

    text = Value("string")
    content: Any = List({"type": text, "text": text}) if with_images else text
    cols: dict[str, Any] = {
        "prompt": List({"role": text, "content": content}),
        "completion": List({"role": text, "content": text}),
    }
    if with_images:
        cols["images"] = List(Image())
    cols.update({name: text for name in ("id", "group_id", "title", "winner")})
    return Features(cols)


def image_folders(pairs_file: str | Path) -> list[Path]:
    """The folders beside a pairs file that hold its images: the first folder of every relative image path
    (`img/a.jpg` -> FOLDER/img). Read leniently: a bad line or path is `read_pairs`' to name."""
    pairs_file = Path(pairs_file)
    root, found = pairs_file.parent, set()
    try:
        lines = pairs_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for text in lines:
        try:
            raw = json.loads(text)
        except ValueError:
            continue
        for key in ("a", "b"):
            cand = raw.get(key) if isinstance(raw, dict) else None
            rel = cand.get("image") if isinstance(cand, dict) else None
            parts = Path(rel).parts if isinstance(rel, str) else ()
            if len(parts) > 1 and not Path(rel).is_absolute() and parts[0] not in ("..", "."):
                found.add(root / parts[0])
    return sorted(found)


def check_pairs_output(out: str | Path, pairs_file: str | Path, flag: str = "--pairs") -> None:
    """An output written from a pairs file goes to a new folder, beside the file if the user likes (the common
    case: `--pairs data/pairs.jsonl --out data/pairs-ds`); never the file itself, nor the folder that holds it
    (the dataset would mix with the pairs and their images), nor into or around a folder of its images."""
    out_path, pairs_file = Path(out).expanduser().resolve(), Path(pairs_file).expanduser()
    folder = pairs_file.parent.resolve()
    if out_path == folder:
        raise DataPrepError(
            f"--out {out}: is the folder of the pairs file {flag} {pairs_file}, where the output would mix with the pairs "
            f"and their images; write it to a new folder, e.g. --out {pairs_file.parent / (pairs_file.stem + '-ds')}"
        )
    if out_path == pairs_file.resolve() or pairs_file.resolve().is_relative_to(out_path):
        what = "is" if out_path == pairs_file.resolve() else "holds"
        raise DataPrepError(f"--out {out}: {what} the pairs file {flag} {pairs_file}; write the output to a new folder (beside the file is fine)")
    for images in image_folders(pairs_file):
        if out_path.is_relative_to(images.resolve()) or images.resolve().is_relative_to(out_path):
            raise DataPrepError(
                f"--out {out}: {'lies inside' if out_path.is_relative_to(images.resolve()) else 'holds'} {images}, which "
                f"holds the images of {flag} {pairs_file}; write the output to a new folder outside it"
            )


def prepare_pairwise(
    pairs_file: str | Path,
    out_dir: str | Path | None = None,
    *,
    with_images: bool = True,
    on_error: str = "stop",
    report: dict[str, Any] | None = None,
):
    """{"sft": dataset, "grpo": the same without `completion`} from a pairs file (columns above); saved to
    `out_dir`/sft and `out_dir`/grpo when given."""
    from datasets import Dataset

    pairs_file = Path(pairs_file)
    pairs, skipped = read_pairs(pairs_file, on_error)
    if report is not None:
        report.update(skipped=len(skipped), skip_reasons=skipped[:3])
    use_images = with_images and any("image" in c for p in pairs for _, c in p.candidates())
    rows = []
    for pair in pairs:
        messages, paths = pair_prompt(pair, pairs_file, use_images)
        row: dict[str, Any] = {"prompt": messages, "completion": [{"role": "assistant", "content": trace(pair)}]}
        if use_images:
            root = pairs_file.parent.resolve()
            row["images"] = [{"bytes": p.read_bytes(), "path": str(p.relative_to(root))} for p in paths]
        row.update(id=pair.id, group_id=pair.id, title=pair.context or f"pair {pair.id}", winner=pair.better)
        rows.append(row)
    sft = Dataset.from_list(rows, features=_features(use_images))
    datasets = {"sft": sft, "grpo": sft.remove_columns("completion")}  # GRPO generates its own completions
    if out_dir is not None:
        for name, dataset in datasets.items():
            dataset.save_to_disk(str(Path(out_dir) / name))
    return datasets
