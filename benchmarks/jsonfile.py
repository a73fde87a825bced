"""Results files: read a JSON file (empty when absent) and rewrite one atomically, so a benchmark stopped
mid-write (a session's end, a crash) never leaves half a file and a re-run resumes from what is there."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def read_json(path: Path, empty=None):
    """The file's content, or `empty` ({} unless given) when there is no file yet."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else ({} if empty is None else empty)


def write_json(path: Path, value) -> None:
    """Write `value` to `path` through a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
