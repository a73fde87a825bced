"""Hostile inputs at the catalog's door (issue 19, classes 1 and 2 of test_hostile_inputs.py): image paths that leave
the catalog (`..`, absolute, symlinks, URLs) and image files that are not what they claim (corrupt, empty,
truncated, text-as-image, decompression bombs). Each probe asserts `refused`: a non-zero exit, no traceback, one
`error:` line naming the record or file, every input byte-identical afterwards.
"""

from __future__ import annotations

import os

import pytest
from reliability_support import refused

from hostile_inputs_support import bomb_png, jpeg_bytes, png_bytes, prepare_args, set_images, text_model, truncated  # noqa: F401  (fixtures among them)


# ---- 1. paths that leave the catalog -----------------------------------------------------------------------


@pytest.mark.parametrize("task", ["sft", "grpo"])
def test_dotdot_path_to_etc_passwd(task, cli, catalog, tmp_path):
    vid = set_images(catalog, ["../../../../../../etc/passwd"])
    line = refused(cli, prepare_args(catalog, tmp_path / "out", task), [catalog], [f"id='{vid}'", "products.jsonl", "escapes"])
    assert not (tmp_path / "out").exists()
    assert "root:" not in line


def test_absolute_path_outside(cli, catalog, tmp_path):
    vid = set_images(catalog, ["/etc/passwd"])
    refused(cli, prepare_args(catalog, tmp_path / "out"), [catalog], [f"id='{vid}'", "/etc/passwd", "escapes"])


def test_absolute_path_to_a_real_image_outside(cli, catalog, tmp_path):
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(png_bytes())
    vid = set_images(catalog, [str(outside)])
    refused(cli, prepare_args(catalog, tmp_path / "out"), [catalog, outside], [f"id='{vid}'", "escapes"])


def test_symlink_to_etc_passwd(cli, catalog, tmp_path):
    (catalog / "images" / "evil.jpg").symlink_to("/etc/passwd")
    vid = set_images(catalog, ["images/evil.jpg"])
    refused(cli, prepare_args(catalog, tmp_path / "out"), [catalog], [f"id='{vid}'", "images/evil.jpg", "escapes"])


def test_symlink_to_an_image_outside(cli, catalog, tmp_path):
    outside = tmp_path / "secret.png"
    outside.write_bytes(png_bytes())
    (catalog / "images" / "link.png").symlink_to(outside)
    vid = set_images(catalog, ["images/link.png"])
    refused(cli, prepare_args(catalog, tmp_path / "out"), [catalog, outside], [f"id='{vid}'", "escapes"])


def test_symlinked_folder_outside(cli, catalog, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.png").write_bytes(png_bytes())
    (catalog / "more").symlink_to(outside, target_is_directory=True)
    vid = set_images(catalog, ["more/a.png"])
    refused(cli, prepare_args(catalog, tmp_path / "out"), [catalog, outside], [f"id='{vid}'", "more/a.png"])


def test_dotdot_through_a_subfolder(cli, catalog, tmp_path):
    (tmp_path / "sibling.png").write_bytes(png_bytes())
    vid = set_images(catalog, ["images/../../sibling.png"])
    refused(cli, prepare_args(catalog, tmp_path / "out"), [catalog], [f"id='{vid}'", "escapes"])


@pytest.mark.parametrize("url", ["http://example.com/a.jpg", "file:///etc/passwd"])
def test_url_without_allow_remote(url, cli, catalog, tmp_path):
    vid = set_images(catalog, [url])
    refused(cli, prepare_args(catalog, tmp_path / "out"), [catalog], [f"id='{vid}'", url])


def test_folder_given_as_image(cli, catalog, tmp_path):
    vid = set_images(catalog, ["images"])
    refused(cli, prepare_args(catalog, tmp_path / "out"), [catalog], [f"id='{vid}'", "'images'", "is a folder"])


def test_missing_image(cli, catalog, tmp_path):
    vid = set_images(catalog, ["images/nope.png"])
    refused(cli, prepare_args(catalog, tmp_path / "out"), [catalog], [f"id='{vid}'", "does not exist"])


def test_eval_refuses_an_escaping_image_before_loading(cli, catalog, text_model, tmp_path):
    vid = set_images(catalog, ["../../../../etc/passwd"])
    refused(cli, ["eval", "--model", text_model, "--data", catalog, "--out", tmp_path / "eval"], [catalog, text_model], [f"id='{vid}'", "escapes"])
    assert not (tmp_path / "eval").exists()


# ---- 2. files that are not what they claim -----------------------------------------------------------------

BAD_IMAGES = {
    "zero-byte": ("x.jpg", b"", "not a readable image"),
    "text-as-jpg": ("x.jpg", b"this is not a picture, just text\n" * 10, "not a readable image"),
    "html-as-png": ("x.png", b"<html><body>hello</body></html>", "not a readable image"),
    "random-bytes": ("x.png", os.urandom(2048), "not a readable image"),
    "truncated-png": ("x.png", truncated(png_bytes(64)), "corrupt or truncated"),
    "truncated-jpeg": ("x.jpg", truncated(jpeg_bytes()), "corrupt or truncated"),
    "bomb-30000": ("x.png", bomb_png(30_000, 30_000), "pixels"),
    "bomb-100000": ("x.png", bomb_png(100_000, 100_000), "pixels"),
    "bad-crc": ("x.png", png_bytes()[:-8] + b"\0\0\0\0" + png_bytes()[-4:], "image"),
    "pdf": ("x.jpg", b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "not a readable image"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_image_fails_prepare_naming_the_record(case, cli, catalog, tmp_path):
    name, data, why = BAD_IMAGES[case]
    (catalog / "images" / name).write_bytes(data)
    vid = set_images(catalog, [f"images/{name}"])
    refused(cli, prepare_args(catalog, tmp_path / "out"), [catalog], [f"id='{vid}'", f"images/{name}", why])
    assert not (tmp_path / "out").exists()


def test_eval_refuses_a_corrupt_image_before_loading(cli, catalog, text_model, tmp_path):
    (catalog / "images" / "x.jpg").write_bytes(b"not an image")
    vid = set_images(catalog, ["images/x.jpg"])
    refused(cli, ["eval", "--model", text_model, "--data", catalog, "--out", tmp_path / "eval"], [catalog], [f"id='{vid}'", "images/x.jpg"])
