"""The matching task every row of benchmarks/pretrained.py is scored on: a Magellan-layout folder prepared by moon-rl
itself (`moon-rl data prepare --source matching`), its queries, corpus and relevance, train / valid pairs, and the
ranking metrics (R@1, R@10, MRR with pessimistic ties)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def run(cmd: list[str]) -> None:
    print("$ " + shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


# ---- data ---------------------------------------------------------------------------------------------


def prepare_catalog(src: Path, workdir: Path) -> Path:
    out = workdir / src.name / "catalog"
    if not (out / "products.jsonl").is_file():
        run([PY, "-m", "moon_rl", "data", "prepare", "--source", "matching", "--input", str(src), "--out", str(out)])
    return out


def offer_text(product) -> str:
    """Title plus brand / model number when the title does not already contain them: moon-rl's own embedding text
    (`data_prep.formats.embedding_text`), read by every row so that no row sees more than another."""
    from data_prep.formats import embedding_text

    return embedding_text(product.title, product.attributes)


def split_ids(catalog: Path, name: str) -> list[str]:
    path = catalog / "splits" / f"{name}.txt"
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Matching:
    """Queries, corpus and relevance of one prepared matching catalog, plus train / valid pairs."""

    def __init__(self, catalog: Path):
        from data_prep.schema import load_catalog

        self.catalog = catalog
        self.products = {p.id: p for p in load_catalog(catalog)}
        self.query_ids = split_ids(catalog, "query")
        self.corpus_ids = split_ids(catalog, "corpus")
        self.query_texts = [offer_text(self.products[i]) for i in self.query_ids]
        self.corpus_texts = [offer_text(self.products[i]) for i in self.corpus_ids]
        self.query_groups = [self.products[i].group_id for i in self.query_ids]
        self.corpus_groups = [self.products[i].group_id for i in self.corpus_ids]

    def pairs(self, split: str) -> list[tuple[str, str]]:
        """(A text, B text) for every A and B offer of one group within `split` (positives for training)."""
        by_group: dict[str, dict[str, list[str]]] = {}
        for pid in split_ids(self.catalog, split):
            side = pid.split("-", 1)[0]
            by_group.setdefault(self.products[pid].group_id, {}).setdefault(side, []).append(pid)
        out = []
        for members in by_group.values():
            for a in members.get("A", []):
                for b in members.get("B", []):
                    out.append((offer_text(self.products[a]), offer_text(self.products[b])))
        return out

    def valid_task(self) -> tuple[list[str], list[str]]:
        """Valid-split A offers with a B match, and their groups (for choosing epochs; corpus stays all of B)."""
        groups = {self.products[p].group_id for p in split_ids(self.catalog, "valid") if p.startswith("B-")}
        ids = [p for p in split_ids(self.catalog, "valid") if p.startswith("A-") and self.products[p].group_id in groups]
        return [offer_text(self.products[i]) for i in ids], [self.products[i].group_id for i in ids]


# ---- metrics --------------------------------------------------------------------------------------------


def rank_metrics(scores, query_groups: list[str], corpus_groups: list[str]) -> dict:
    """scores (Q, N) numpy/torch -> R@1, R@10, MRR over queries with at least one relevant corpus item."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(corpus_groups)
    ranks = []
    for q, group in enumerate(query_groups):
        relevant = groups == group
        if not relevant.any():
            continue
        best = scores[q][relevant].max()
        ranks.append(int((scores[q][~relevant] >= best).sum()) + 1)  # pessimistic ties
    ranks = np.asarray(ranks)
    return {"R@1": float((ranks <= 1).mean()), "R@10": float((ranks <= 10).mean()), "MRR": float((1.0 / ranks).mean()), "n": int(ranks.size)}


def dense_scores(q, c):
    import numpy as np

    q, c = np.asarray(q, dtype=np.float32), np.asarray(c, dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True).clip(1e-12)
    c /= np.linalg.norm(c, axis=1, keepdims=True).clip(1e-12)
    return q @ c.T


