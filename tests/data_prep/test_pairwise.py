"""`data prepare --task pairwise` (data_prep/pairwise.py) and `data synth --pairs` (data_prep/synth_pairs.py)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from data_prep.errors import DataPrepError
from data_prep.pairwise import prepare_pairwise, read_pairs
from data_prep.synth_pairs import PairsConfig, synth_pairs
from reward_fns.pairwise import PairwiseChoiceReward


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_pairs_become_rows_with_images_in_order_and_the_winner(tmp_path):
    for name, colour in (("a.png", "red"), ("b.png", "blue")):
        (tmp_path / "img").mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), colour).save(tmp_path / "img" / name)
    pairs = _write(tmp_path / "pairs.jsonl", [
        {"id": "p1", "a": {"image": "img/a.png"}, "b": {"image": "img/b.png"}, "better": "b", "context": "a blue mug",
         "rationale": "B is blue."},
        {"id": "p2", "a": {"text": "Soft cotton tee"}, "b": {"image": "img/a.png"}, "better": "A"},
    ])
    both = prepare_pairwise(pairs, tmp_path / "out")
    ds = both["sft"]
    assert "completion" not in both["grpo"].column_names and (tmp_path / "out" / "grpo").is_dir()
    assert ds["winner"] == ["B", "A"] and ds["id"] == ds["group_id"] == ["p1", "p2"]
    first = ds[0]
    assert [p["type"] for p in first["prompt"][0]["content"]] == ["image", "image", "text"]
    assert "Context: a blue mug" in first["prompt"][0]["content"][2]["text"]
    assert first["images"][0].getpixel((0, 0)) == (255, 0, 0)  # A's image first
    assert first["completion"][0]["content"] == "<think>\nB is blue.\n</think>\n<answer>B</answer>"
    assert "Candidate A: Soft cotton tee" in ds[1]["prompt"][0]["content"][1]["text"]
    # The SFT target is what the GRPO reward scores 1.0.
    assert PairwiseChoiceReward()([r[0]["content"] for r in ds["completion"]], winner=ds["winner"]) == [1.0, 1.0]


@pytest.mark.parametrize("row,match", [
    ({"id": "x", "a": {"text": "t"}, "b": {"text": "u"}, "better": "c"}, r":1 \(id='x'\): field 'better'"),
    ({"id": "x", "a": {"video": "v"}, "b": {"text": "u"}, "better": "a"}, r"field 'a': expected"),
    ({"id": "x", "a": {"image": "../outside.png"}, "b": {"text": "u"}, "better": "a"}, "leaves the pairs file's folder"),
    ({"id": "x", "a": {"image": "missing.png"}, "b": {"text": "u"}, "better": "a"}, "not found"),
    ({"id": "x", "a": {"text": "t"}, "b": {"text": "u"}, "better": "a", "score": 1}, r"unknown field\(s\) \['score'\]"),
    ("{not json", r":1: invalid JSON"),
])
def test_bad_pairs_are_named(tmp_path, row, match):
    (tmp_path / "d").mkdir()
    pairs = _write(tmp_path / "d" / "pairs.jsonl", [row, {"id": "ok", "a": {"text": "t"}, "b": {"text": "u"}, "better": "a"}])
    with pytest.raises(DataPrepError, match=match):
        read_pairs(pairs)
    kept, skipped = read_pairs(pairs, on_error="skip")
    assert [p.id for p in kept] == ["ok"] and len(skipped) == 1


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    pairs = _write(tmp_path / "pairs.jsonl", [{"id": "x", "a": {"image": "bad.jpg"}, "b": {"text": "u"}, "better": "a"}])
    with pytest.raises(DataPrepError, match=r"id='x'\): image .*bad.jpg does not open"):
        read_pairs(pairs)


def test_synth_pairs_are_balanced_deterministic_and_prepare(tmp_path):
    a = synth_pairs(tmp_path / "a", PairsConfig(pairs=20, seed=1, image_size=16))
    b = synth_pairs(tmp_path / "b", PairsConfig(pairs=20, seed=1, image_size=16))
    assert a["pairs"] == {"train": 16, "test": 4} and 5 <= a["better_a"] <= 15
    assert (tmp_path / "a" / "train.jsonl").read_text() == (tmp_path / "b" / "train.jsonl").read_text()
    ds = prepare_pairwise(tmp_path / "a" / "test.jsonl", None)["grpo"]
    assert len(ds) == 4 and all(len(imgs) == 2 for imgs in ds["images"])
    row = json.loads((tmp_path / "a" / "test.jsonl").read_text().splitlines()[0])
    colour = row["context"].split()[1]
    assert colour in row["rationale"] and f"so {row['better'].upper()} matches" in row["rationale"]


def test_synth_pairs_can_differ_in_kind(tmp_path):
    synth_pairs(tmp_path, PairsConfig(pairs=6, seed=2, image_size=16, differ="kind", colours=("red", "blue")))
    for line in (tmp_path / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        wanted = row["context"].removeprefix("A ")
        assert f"andidate {row['better'].upper()} is {wanted}," in row["rationale"]
    with pytest.raises(ValueError, match="differ"):
        synth_pairs(tmp_path / "x", PairsConfig(pairs=2, differ="size"))
