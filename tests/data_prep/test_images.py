"""data_prep.images: path resolution refuses escapes and URLs; decoding refuses corrupt, truncated, huge images."""

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from data_prep.errors import DataPrepError
from data_prep.images import ImageStore, is_url, open_image_checked, resolve_image_path


def png_bytes(size=(8, 6), mode="RGB", colour=(200, 10, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, colour if mode == "RGB" else None).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def bomb_png(width=100_000, height=100_000) -> bytes:
    """A valid-looking PNG whose header declares width x height pixels; the file itself is ~70 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_resolve_relative_path_inside_catalog(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(png_bytes())
    assert resolve_image_path("img/a.png", tmp_path) == (tmp_path / "img" / "a.png").resolve()
    # an absolute path is fine as long as it stays inside the catalog folder
    assert resolve_image_path(str(tmp_path / "img" / "a.png"), tmp_path).name == "a.png"


@pytest.mark.parametrize("ref", ["../../etc/passwd", "/etc/passwd", "img/../../outside.png"])
def test_resolve_refuses_paths_escaping_the_catalog(tmp_path, ref):
    catalog = tmp_path / "catalog"
    (catalog / "img").mkdir(parents=True)
    (tmp_path / "outside.png").write_bytes(png_bytes())
    with pytest.raises(DataPrepError, match="escapes the catalog folder") as err:
        resolve_image_path(ref, catalog)
    assert repr(ref) in str(err.value)


def test_resolve_refuses_symlink_pointing_outside(tmp_path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (tmp_path / "secret.png").write_bytes(png_bytes())
    (catalog / "link.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(DataPrepError, match="escapes the catalog folder"):
        resolve_image_path("link.png", catalog)


def test_resolve_missing_file_names_where_it_looked(tmp_path):
    with pytest.raises(DataPrepError, match="not found") as err:
        resolve_image_path("nope.jpg", tmp_path)
    assert str(tmp_path.resolve() / "nope.jpg") in str(err.value)


def test_urls_are_refused_unless_allowed(tmp_path):
    assert is_url("https://cdn.example.com/a.jpg") and not is_url("C:\\imgs\\a.jpg") and not is_url("a.jpg")
    with pytest.raises(DataPrepError, match="--allow-remote-images"):
        resolve_image_path("https://cdn.example.com/a.jpg", tmp_path)
    # even when remote images are allowed, only http(s) is fetched (no file://, ftp://)
    with pytest.raises(DataPrepError, match="only http"):
        resolve_image_path("file:///etc/passwd", tmp_path, allow_remote=True, download_dir=tmp_path / "dl")


def test_open_image_checked_converts_to_rgb(tmp_path):
    path = tmp_path / "rgba.png"
    path.write_bytes(png_bytes(mode="RGBA"))
    img = open_image_checked(path)
    assert img.mode == "RGB" and img.size == (8, 6)


def test_corrupt_image_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.jpg"
    path.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(DataPrepError, match="not a readable image") as err:
        open_image_checked(path)
    assert str(path) in str(err.value)


def test_truncated_image_is_a_clear_error(tmp_path):
    data = jpeg_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataPrepError, match="corrupt or truncated") as err:
        open_image_checked(path)
    assert str(path) in str(err.value)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    assert path.stat().st_size < 200
    with pytest.raises(DataPrepError, match="decompression bomb") as err:
        open_image_checked(path)
    assert str(path) in str(err.value) and "10000000000" in str(err.value)
    # below Pillow's own hard limit, our check reports the declared size
    path.write_bytes(bomb_png(12_000, 12_000))
    with pytest.raises(DataPrepError, match="12000x12000"):
        open_image_checked(path)
    # a custom limit applies to ordinary images too
    small = tmp_path / "small.png"
    small.write_bytes(png_bytes(size=(20, 20)))
    with pytest.raises(DataPrepError, match="over the limit of 100"):
        open_image_checked(small, max_pixels=100)


def test_file_size_limit(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes())
    with pytest.raises(DataPrepError, match="over the limit of 10"):
        open_image_checked(path, max_bytes=10)


def test_store_names_by_content_and_real_format(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    data = png_bytes()
    (src / "a.jpg").write_bytes(data)  # a PNG with a misleading extension
    (src / "b.png").write_bytes(data)  # the same bytes again
    (src / "c.jpg").write_bytes(jpeg_bytes())
    store = ImageStore(tmp_path / "out")
    a, b, c = store.add("a.jpg", src), store.add("b.png", src), store.add("c.jpg", src)
    assert a == b and a.startswith("images/") and a.endswith(".png")
    assert c.endswith(".jpg") and c != a
    assert (tmp_path / "out" / a).read_bytes() == data
    assert store.stored == {a, c}
    # a second store (a rerun) gives the same names
    assert ImageStore(tmp_path / "out2").add("c.jpg", src) == c


def test_store_caches_failures(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    store = ImageStore(tmp_path / "out")
    for _ in range(2):
        with pytest.raises(DataPrepError, match="'bad.png'"):
            store.add("bad.png", tmp_path)
    assert not (tmp_path / "out" / "images").exists() or not any((tmp_path / "out" / "images").iterdir())


def test_store_refuses_url_without_fetching(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("must not fetch")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    with pytest.raises(DataPrepError, match="--allow-remote-images"):
        ImageStore(tmp_path / "out").add("http://example.com/x.jpg", tmp_path)
    assert not Path(tmp_path / "out" / ".remote-cache").exists()
