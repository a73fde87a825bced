"""`moon-rl embed` and `moon-rl search` (moon_rl/index/): shards and manifest, resume after a crash with the vectors of
an uninterrupted run, refusal of another model's folder, --on-error, and search by text, file and id."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from moon_rl.cli import app
from moon_rl.errors import MoonError
from moon_rl.index import embed as embed_mod
from moon_rl.index.embed import EmbedConfig, run_embed
from moon_rl.index.store import Index

TEXTS = [
    "sony cd player cdpce375 5 disc", "bose acoustimass 5 speaker system", "panasonic corded phone kxts3282b",
    "canon powershot sd1100 digital camera", "linksys etherfast 8-port switch ezxs88w", "kenwood 6-disc cd changer kdcc669",
    "escort solo radar detector s2e", "cuisinart cordless electric kettle", "samsung 52 inch lcd tv ln52a650",
    "garmin nuvi 260 gps navigator",
]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from moon_rl.models.tiny import make_tiny_model

    return make_tiny_model("qwen2", tmp_path_factory.mktemp("m") / "tiny", extra_corpus=TEXTS, seed=0)


@pytest.fixture
def textfile(tmp_path):
    path = tmp_path / "titles.txt"
    path.write_text("\n".join(TEXTS[:5] + [""] + TEXTS[5:]) + "\n", encoding="utf-8")  # a blank line is no record
    return path


def _embed(base, data, out, **kw):
    return run_embed(EmbedConfig(model=str(base), data=str(data), out=str(out), reasoning=False, shard_size=3, batch_size=2, progress=False, **kw))


def test_embed_writes_every_record_once_in_parquet_with_a_manifest(base, textfile, tmp_path):
    manifest = _embed(base, textfile, tmp_path / "idx")
    assert manifest["complete"] and manifest["count"] == 10 and manifest["shards"] == 4
    table = pq.read_table(tmp_path / "idx" / "shards")
    assert sorted(table.column("id").to_pylist()) == sorted(f"line-{n}" for n in (1, 2, 3, 4, 5, 7, 8, 9, 10, 11))
    index = Index(tmp_path / "idx")
    assert index.vectors.shape == (10, manifest["dimension"])
    np.testing.assert_allclose(np.linalg.norm(index.vectors, axis=1), 1.0, atol=1e-5)
    # the stored vector is the one `encode` serves for that text
    from moon_rl.inference import load

    served = load(base).encode([TEXTS[3]], reasoning=False, progress=False).numpy()[0]
    np.testing.assert_allclose(index.vectors[index.position["line-4"]], served, atol=1e-6)


def test_a_crash_mid_run_resumes_to_the_uninterrupted_vectors(base, textfile, tmp_path, monkeypatch):
    whole = Index_of(_embed(base, textfile, tmp_path / "whole"), tmp_path / "whole")
    real, written = embed_mod.write_shard, []

    def crash_after_two(path, *args):
        if len(written) == 2:
            raise KeyboardInterrupt  # a kill between shards
        written.append(path)
        real(path, *args)

    monkeypatch.setattr(embed_mod, "write_shard", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        _embed(base, textfile, tmp_path / "cut")
    with pytest.raises(MoonError, match="did not finish"):
        Index(tmp_path / "cut")
    monkeypatch.setattr(embed_mod, "write_shard", real)
    resumed = _embed(base, textfile, tmp_path / "cut")
    assert resumed["count"] == 10
    again = Index(tmp_path / "cut")
    assert again.ids == whole.ids  # every id once, in the plan's order
    np.testing.assert_array_equal(again.vectors, whole.vectors)


def Index_of(manifest, folder):
    assert manifest["complete"]
    return Index(folder)


def test_another_models_folder_is_refused(base, textfile, tmp_path):
    from moon_rl.models.tiny import make_tiny_model

    _embed(base, textfile, tmp_path / "idx")
    other = make_tiny_model("qwen2", tmp_path / "other", extra_corpus=TEXTS, seed=1)
    with pytest.raises(MoonError, match="another model"):
        _embed(other, textfile, tmp_path / "idx")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(MoonError, match="did not write"):
        _embed(base, textfile, tmp_path / "mine")


def test_on_error_stop_names_the_records_and_skip_leaves_them_out(base, textfile, tmp_path, monkeypatch):
    from moon_rl.inference import MoonModel

    real = MoonModel.encode_with_completions

    def fails_on_kettle(self, records, **kw):
        if any("kettle" in getattr(r, "text", "") for r in records):
            raise MoonError("cannot embed this one")
        return real(self, records, **kw)

    monkeypatch.setattr(MoonModel, "encode_with_completions", fails_on_kettle)
    with pytest.raises(MoonError, match=r"failed: cannot embed this one; pass --on-error skip"):
        _embed(base, textfile, tmp_path / "stop")
    manifest = _embed(base, textfile, tmp_path / "skip", on_error="skip")
    assert manifest["count"] == 9 and manifest["skipped_while_encoding"] == 1
    skipped = [json.loads(line) for line in (tmp_path / "skip" / "skipped.jsonl").read_text().splitlines()]
    assert [s["id"] for s in skipped] == ["line-9"]
    assert "line-9" not in Index(tmp_path / "skip").position


def test_search_by_text_file_and_id(base, textfile, tmp_path):
    _embed(base, textfile, tmp_path / "idx")
    runner = CliRunner()
    result = runner.invoke(app, ["search", "--index", str(tmp_path / "idx"), "--query", TEXTS[2], "-k", "3"])
    assert result.exit_code == 0, result.output
    assert "| rank | score | id | text |" in result.stdout and f"| 1 | 1.0000 | line-3 | {TEXTS[2]} |" in result.stdout

    queries = tmp_path / "q.txt"
    queries.write_text(f"{TEXTS[0]}\n{TEXTS[8]}\n", encoding="utf-8")
    result = runner.invoke(app, ["search", "--index", str(tmp_path / "idx"), "--queries", str(queries), "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert [h["hits"][0]["id"] for h in hits] == ["line-1", "line-10"] and all(len(h["hits"]) == 2 for h in hits)

    result = runner.invoke(app, ["search", "--index", str(tmp_path / "idx"), "--id", "line-1", "-k", "9", "--json"])
    ids = [h["id"] for h in json.loads(result.stdout)[0]["hits"]]
    assert "line-1" not in ids and len(ids) == 9
    scores = [h["score"] for h in json.loads(result.stdout)[0]["hits"]]
    assert scores == sorted(scores, reverse=True)

    result = runner.invoke(app, ["search", "--index", str(tmp_path / "idx"), "--id", "nope"])
    assert result.exit_code == 2 and "not in the index" in result.output
    result = runner.invoke(app, ["search", "--index", str(tmp_path / "idx")])
    assert result.exit_code == 2 and "exactly one of --query" in result.output


def test_embed_cli_on_a_catalog_split(base, tmp_path):
    from data_prep.synth import SynthConfig, synth_catalog

    catalog = tmp_path / "catalog"
    synth_catalog(catalog, SynthConfig(products=12, seed=0))
    result = CliRunner().invoke(app, ["embed", "--model", str(base), "--data", str(catalog), "--split", "test", "--out",
                                      str(tmp_path / "idx"), "--no-reasoning", "--shard-size", "4"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "idx" / "moon_rl_index.json").read_text())
    test_ids = (catalog / "splits" / "test.txt").read_text().split()
    assert manifest["count"] == len(test_ids) and set(Index(tmp_path / "idx").ids) == set(test_ids)
    assert manifest["command"].startswith("moon-rl embed --model")


@pytest.mark.skipif(__import__("importlib").util.find_spec("ray") is None, reason="needs ray: pip install 'moon-rl[ray]' (the dev extra installs it)")
def test_ray_path_writes_the_same_index(base, textfile, tmp_path):
    """`embed --ray` on a local Ray instance: the same shard files, ids and vectors as the single-process path."""
    single = Index_of(_embed(base, textfile, tmp_path / "single"), tmp_path / "single")
    result = CliRunner().invoke(app, ["embed", "--model", str(base), "--data", str(textfile), "--out", str(tmp_path / "ray"),
                                      "--no-reasoning", "--shard-size", "3", "--batch-size", "2", "--ray"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "ray" / "moon_rl_index.json").read_text())
    assert manifest["complete"] and manifest["ray"]["address"] == "local" and manifest["count"] == 10
    ray_index = Index(tmp_path / "ray")
    assert ray_index.ids == single.ids
    assert float(np.abs(ray_index.vectors - single.vectors).max()) <= 1e-5


@pytest.mark.skipif(__import__("importlib").util.find_spec("faiss") is None, reason="needs faiss: pip install 'moon-rl[faiss]' (faiss-cpu)")
@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_index_reports_its_recall_and_serves_search(base, textfile, tmp_path, kind):
    _embed(base, textfile, tmp_path / "idx")
    runner = CliRunner()
    result = runner.invoke(app, ["search", "--index", str(tmp_path / "idx"), "--build-ann", kind])
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "idx" / "ann.json").read_text())
    assert info["kind"] == kind and info["count"] == 10 and 0.0 <= info["recall@10"] <= 1.0
    assert f"recall@10 {info['recall@10']:.3f} against exact" in result.stdout
    # 10 vectors, k = 3: one cell / a tiny graph finds the exact neighbours
    exact = json.loads(runner.invoke(app, ["search", "--index", str(tmp_path / "idx"), "--query", TEXTS[4], "-k", "3", "--json"]).stdout)
    approx = json.loads(runner.invoke(app, ["search", "--index", str(tmp_path / "idx"), "--query", TEXTS[4], "-k", "3", "--json", "--ann"]).stdout)
    assert [h["id"] for h in approx[0]["hits"]] == [h["id"] for h in exact[0]["hits"]]


def test_ann_recall_doctest():
    import doctest

    from moon_rl.index import ann

    assert doctest.testmod(ann).failed == 0


def test_search_without_an_approximate_index_says_how_to_build_one(base, textfile, tmp_path):
    pytest.importorskip("faiss", reason="needs faiss-cpu")
    _embed(base, textfile, tmp_path / "idx")
    result = CliRunner().invoke(app, ["search", "--index", str(tmp_path / "idx"), "--query", "x", "--ann"])
    assert result.exit_code == 2 and "--build-ann ivf" in result.output
