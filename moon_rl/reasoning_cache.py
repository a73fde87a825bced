"""The reasoning a model wrote for each record, kept on disk: generation is the index-time cost of the reasoning
embedding (about 5 records/s for SmolLM2-135M on 2 CPU cores, against ~30/s for the no-reasoning vector), paid once
per model and record.

    model.encode(records, reasoning_cache="index/reasoning")   # generates only what the cache lacks

One JSON-lines file per model, `<dir>/<model fingerprint>.jsonl`, one `{"key", "reasoning"}` line per record, keyed by
a hash of the text the reasoning is written from; lines are appended and flushed batch by batch, so an interrupted
run keeps what it wrote and the next one generates the rest. The fingerprint hashes the weights the reasoning came
from (adapter and head files, or the model's own), so a retrained model never reads another's reasoning.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

WEIGHT_FILES = ("adapter_model.safetensors", "moon_extras.safetensors", "moon_extras.json", "model.safetensors")


def model_fingerprint(model_dir: str | Path) -> str:
    """A short hash of the files that decide what the model writes (16 hex digits)."""
    digest = hashlib.sha256()
    found = False
    for name in WEIGHT_FILES:
        path = Path(model_dir) / name
        if path.is_file():
            found = True
            digest.update(name.encode())
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    if not found:
        digest.update(str(Path(model_dir).resolve()).encode())  # a sharded base model: its path stands for it
    return digest.hexdigest()[:16]


def record_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class ReasoningCache:
    """Reasoning by record text, for one model, in `<folder>/<fingerprint>.jsonl`."""

    def __init__(self, folder: str | Path, fingerprint: str):
        self.path = Path(folder) / f"{fingerprint}.jsonl"
        self.entries: dict[str, str] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self.entries[row["key"]] = row["reasoning"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by a crash: that record is generated again

    def get(self, text: str) -> str | None:
        return self.entries.get(record_key(text))

    def put(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Append (text, reasoning) pairs and flush: what was written survives a crash."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            for text, reasoning in pairs:
                key = record_key(text)
                self.entries[key] = reasoning
                fh.write(json.dumps({"key": key, "reasoning": reasoning}, ensure_ascii=False) + "\n")
            fh.flush()
