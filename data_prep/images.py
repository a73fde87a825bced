"""Safe image handling for `moon-rl data prepare`: resolve a catalog's image reference, open and fully
decode it with limits, and store a verified copy in the output catalog.

Every image a catalog uses is opened here once, so a corrupt, truncated or hostile file fails during
`data prepare` (naming the record) instead of hours into training. What is refused, and why:

- paths that leave the catalog folder after `Path.resolve()` (`../../etc/passwd`, absolute paths elsewhere,
  symlinks pointing outside): a catalog must not make the trainer read arbitrary files;
- URLs, unless `allow_remote=True` (`--allow-remote-images`); then only http(s), fetched with a timeout and a
  byte limit into `<out>/.remote-cache/`, then stored like local files (no network in the tests: only the
  refusal path is tested);
- files over `max_bytes`, formats outside `ALLOWED_FORMATS`, and images declaring more than `max_pixels`
  pixels (decompression bombs: a tiny PNG can declare 100000 x 100000 pixels; the header is checked before
  anything is decoded);
- anything Pillow cannot `verify()` and then fully `load()` (corrupt or truncated files).

Stored copies are named by the SHA-256 of their bytes (`images/<hash>.<ext>`, extension from the real format),
so names are stable across runs and identical images are stored once. The bytes written are the bytes that
were verified (no re-read after the check), which is why files are copied rather than hard-linked.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from data_prep.errors import DataPrepError

IMAGES_DIR = "images"
# Downloads land here first (a rerun reuses them); only the verified copy in images/ is referenced.
REMOTE_CACHE_DIR = ".remote-cache"
# Pillow's own default bomb limit (~9459 x 9459): far above any product photo.
DEFAULT_MAX_PIXELS = 89_478_485
DEFAULT_MAX_BYTES = 50 * 2**20
REMOTE_TIMEOUT_S = 20.0
# Decoders that product photos need; fewer decoders, less attack surface. (Pillow's JPEG opener also
# returns camera multi-picture files, reported as format "MPO".)
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")
_EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "TIFF": ".tif"}
_REMOTE_SCHEMES = ("http", "https")


def is_url(ref: str) -> bool:
    """True for `scheme://...` references (a Windows drive letter `C:\\` is not a scheme)."""
    scheme = urllib.parse.urlparse(ref).scheme
    return len(scheme) > 1 and "://" in ref


def resolve_image_path(
    ref: str,
    catalog_dir: str | Path,
    allow_remote: bool = False,
    download_dir: str | Path | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Path:
    """Turn an image reference from a catalog into a local file path inside `catalog_dir` (or `download_dir`).

    Relative references are relative to `catalog_dir`. Raises `DataPrepError` (message starts with the reference)
    for URLs when `allow_remote` is false, for paths escaping `catalog_dir`, and for missing files.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise DataPrepError(f"{ref!r}: empty image reference")
    if is_url(ref):
        scheme = urllib.parse.urlparse(ref).scheme.lower()
        if not allow_remote:
            raise DataPrepError(
                f"{ref!r}: image URLs are not fetched by default; download the images next to the catalog "
                "and refer to them by relative path, or pass --allow-remote-images"
            )
        if scheme not in _REMOTE_SCHEMES:
            raise DataPrepError(f"{ref!r}: only http(s) image URLs can be fetched, not {scheme}://")
        if download_dir is None:
            raise DataPrepError(f"{ref!r}: remote images need a download folder")
        return fetch_remote_image(ref, Path(download_dir), max_bytes=max_bytes)
    root = Path(catalog_dir).resolve()
    try:
        # resolve() follows symlinks and collapses "..", so the check below sees where the file really is.
        path = (root / ref).resolve()
    except (OSError, ValueError) as err:
        raise DataPrepError(f"{ref!r}: not a usable path ({err})") from None
    if not path.is_relative_to(root):
        raise DataPrepError(
            f"{ref!r}: image path escapes the catalog folder {root} (resolves to {path}); "
            "image paths must point inside the catalog folder"
        )
    if path.is_dir():
        raise DataPrepError(f"{ref!r}: is a folder ({path}), not an image file")
    if not path.is_file():
        raise DataPrepError(f"{ref!r}: image file not found: {path} does not exist")
    return path


def fetch_remote_image(url: str, dest_dir: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """Download `url` into `dest_dir` (name from the URL's hash, so a rerun reuses it); timeout and size limit."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"url-{hashlib.sha256(url.encode('utf-8')).hexdigest()[:20]}"
    if dest.is_file():
        return dest
    try:
        with urllib.request.urlopen(url, timeout=REMOTE_TIMEOUT_S) as resp:  # noqa: S310 (scheme checked)
            data = resp.read(max_bytes + 1)
    except (OSError, ValueError) as err:
        raise DataPrepError(f"{url!r}: could not download image ({err})") from None
    if len(data) > max_bytes:
        raise DataPrepError(f"{url!r}: image is larger than the limit of {max_bytes} bytes")
    tmp = dest.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return dest


def _decode_checked(data: bytes, label: str, max_pixels: int) -> tuple[Image.Image, str]:
    """Verify and fully decode image bytes; returns (RGB image, Pillow format name)."""
    try:
        with warnings.catch_warnings():
            # We apply our own pixel limit below; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as probe:
                fmt = probe.format or "?"
                width, height = probe.size
                if width * height > max_pixels:
                    raise DataPrepError(
                        f"{label}: image declares {width}x{height} = {width * height} pixels, over the limit of "
                        f"{max_pixels} (a decompression bomb or an oversized file); resize it"
                    )
                probe.verify()  # structure and checksums, without decoding pixels
            # verify() leaves the image unusable: reopen to decode every pixel (catches truncation).
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as img:
                img.load()
                rgb = img.convert("RGB")
    except DataPrepError:
        raise
    except Image.DecompressionBombError as err:  # Pillow's own limit (2 x MAX_IMAGE_PIXELS) hit inside open()
        raise DataPrepError(
            f"{label}: image declares too many pixels, a decompression bomb or an oversized file ({err})"
        ) from None
    except UnidentifiedImageError:
        raise DataPrepError(
            f"{label}: not a readable image (corrupt, or not one of {', '.join(ALLOWED_FORMATS)})"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as err:
        raise DataPrepError(f"{label}: corrupt or truncated image ({err})") from None
    return rgb, fmt


def _read_limited(path: Path, label: str, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DataPrepError(f"{label}: image file is {size} bytes, over the limit of {max_bytes}")
        return path.read_bytes()
    except OSError as err:
        raise DataPrepError(f"{label}: cannot read image ({err.strerror or err})") from None


def check_image_bytes(
    data: bytes, label: str, max_pixels: int = DEFAULT_MAX_PIXELS, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> None:
    """Image bytes already in memory (a prepared dataset's `images` column): under `max_bytes`, a format in
    `ALLOWED_FORMATS`, under `max_pixels`, fully decodable. Raises `DataPrepError` starting with `label`."""
    if len(data) > max_bytes:
        raise DataPrepError(f"{label}: image is {len(data)} bytes, over the limit of {max_bytes}")
    image, _ = _decode_checked(data, label, max_pixels)
    image.close()


def open_image_checked(
    path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Image.Image:
    """Open an image file, check size limits, verify and fully decode it; returns an RGB `PIL.Image`.

    Raises `DataPrepError` naming the file for corrupt, truncated, oversized or unsupported images.
    """
    path = Path(path)
    image, _ = _decode_checked(_read_limited(path, str(path), max_bytes), str(path), max_pixels)
    return image


class ImageStore:
    """Copies verified images into `<out>/images/` and hands back their catalog-relative paths.

    `add(ref, catalog_dir)` returns e.g. "images/3fa2...c1.jpg" or raises `DataPrepError` starting with the reference.
    Results (and failures) are cached per resolved file, so an image shared by many records is checked once.
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        allow_remote: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ):
        self.out_dir = Path(out_dir)
        self.images_dir = self.out_dir / IMAGES_DIR
        self.allow_remote = allow_remote
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.stored: set[str] = set()  # relative paths written in this run
        self._cache: dict[tuple[str, str], str | DataPrepError] = {}

    def add(self, ref: str, catalog_dir: str | Path) -> str:
        key = (str(catalog_dir), ref)
        if key not in self._cache:
            try:
                self._cache[key] = self._store(ref, Path(catalog_dir))
            except DataPrepError as err:
                self._cache[key] = err
        result = self._cache[key]
        if isinstance(result, DataPrepError):
            raise result
        return result

    def _store(self, ref: str, catalog_dir: Path) -> str:
        path = resolve_image_path(
            ref, catalog_dir, self.allow_remote, self.out_dir / REMOTE_CACHE_DIR, max_bytes=self.max_bytes
        )
        data = _read_limited(path, repr(ref), self.max_bytes)
        image, fmt = _decode_checked(data, repr(ref), self.max_pixels)
        image.close()
        name = hashlib.sha256(data).hexdigest()[:20] + _EXTENSIONS.get(fmt, "." + fmt.lower())
        rel = f"{IMAGES_DIR}/{name}"
        dest = self.out_dir / rel
        if not dest.is_file():
            self.images_dir.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(dest)
        self.stored.add(rel)
        return rel


# ---- every image a catalog's records name, checked before a dataset or a model sees it --------------


def _record_lines(products_file: Path) -> dict[str, int]:
    """id -> 1-based line in products.jsonl (read only when an error needs it)."""
    import json

    lines: dict[str, int] = {}
    try:
        with open(products_file, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("id"), str):
                    lines.setdefault(record["id"], number)
    except OSError:
        pass
    return lines


def check_record_images(
    products,
    catalog_dir: str | Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    keep_bytes: bool = False,
) -> dict[Path, bytes]:
    """Resolve and fully decode every image the `products` (records of the catalog in `catalog_dir`) refer to.

    The one door for image paths read from a catalog: each reference is resolved with symlinks followed and
    must stay inside the catalog folder (`resolve_image_path`); each file is read under `max_bytes` and
    decoded under `max_pixels` (`_decode_checked`). The first failure raises `DataPrepError` as
    `CATALOG/products.jsonl:LINE (id='...'): field 'images': REF: what is wrong; how to fix`.
    Returns {resolved path: verified bytes} when `keep_bytes` (so the caller stores exactly what was checked),
    else an empty dict. A file shared by many records is checked once.
    """
    catalog_dir = Path(catalog_dir)
    products_file = catalog_dir / "products.jsonl"
    verified: dict[Path, bytes] = {}
    seen: set[Path] = set()
    for product in products:
        for ref in product.images:
            try:
                path = resolve_image_path(ref, catalog_dir)
                if path in seen:
                    continue
                data = _read_limited(path, repr(ref), max_bytes)
                image, _ = _decode_checked(data, repr(ref), max_pixels)
                image.close()
            except DataPrepError as err:
                line = _record_lines(products_file).get(product.id)
                where = f"{products_file}:{line}" if line else str(products_file)
                raise DataPrepError(
                    f"{where} (id={product.id!r}): field 'images': {err}; fix or remove the image, "
                    "or prepare with --no-images"
                ) from None
            seen.add(path)
            if keep_bytes:
                verified[path] = data
    return verified
