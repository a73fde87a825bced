"""What both demos share: the numbered stages with their timings, and the output folder a demo owns."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from moon_rl.errors import MoonError

DEMO_MARKER = ".moon-rl-demo"


class Stages:
    """Runs named stages in order, printing `[i/n] name ...` and `done in Xs`; `timings` keeps the seconds."""

    def __init__(self, total: int):
        self.total, self.index, self.start = total, 0, time.perf_counter()
        self.timings: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        self.index += 1
        print(f"\n[{self.index}/{self.total}] {name} ...", flush=True)
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        self.timings[name] = round(time.perf_counter() - t0, 1)
        print(f"[{self.index}/{self.total}] {name}: done in {self.timings[name]:.1f}s (total {time.perf_counter() - self.start:.0f}s)", flush=True)
        return result

    def table(self) -> str:
        """The stage timings as a Markdown table, total last."""
        width = max((len(name) for name in self.timings), default=5)
        lines = [f"| {'stage':<{width}} | seconds |", f"|{'-' * (width + 2)}|---------|"]
        lines += [f"| {name:<{width}} | {seconds:7.1f} |" for name, seconds in self.timings.items()]
        lines.append(f"| {'total':<{width}} | {sum(self.timings.values()):7.1f} |")
        return "\n".join(lines)


def prepare_out(out: Path, force: bool) -> None:
    """An earlier demo's folder (it carries DEMO_MARKER) is replaced; any other non-empty folder needs --force."""
    if out.exists() and any(out.iterdir()):
        if not (force or (out / DEMO_MARKER).is_file()):
            raise MoonError(f"{out} is not empty and not a previous demo's folder; pass --force to replace it or --out to choose another")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).write_text("written by `moon-rl demo`; the next demo run replaces this folder\n", encoding="utf-8")
