"""Folders of pictures (CelebA faces, shoes, cat faces...) as square RGB uint8 arrays, cached."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from tinygan.utils.download import user_cache_dir
from tinygan.utils.fileio import atomic_write
from tinygan.utils.idx import DatasetError, PathLike

IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png", ".webp")
_CACHE_FORMAT = "tinygan-image-folder-v1"  # bump when the preprocessing changes


@dataclass(frozen=True)
class ImageFolderData:
    """What :func:`load_image_folder` returns.

    Attributes:
        images: uint8 ``(N, 3, size, size)``, RGB, in sorted path order.
        skipped: how many image files could not be read and were left out.
        cache_path: the ``.npy`` cache used or written, or None with ``cache=False``.
    """

    images: np.ndarray
    skipped: int
    cache_path: Path | None


def load_image_folder(
    root: PathLike,
    size: int = 64,
    cache: bool = True,
    cache_dir: PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> ImageFolderData:
    """Load every image under a folder (CelebA, shoes, cat faces...) as square RGB arrays.

    Files ending in .jpg, .jpeg, .png, .bmp or .webp (any case) are found recursively and
    read in sorted order. Each one is turned upright (EXIF orientation), converted to RGB
    (transparent pixels over white, greyscale repeated over three channels), centre-cropped
    to a square and resized to ``size`` x ``size`` with Lanczos filtering. Files that Pillow
    cannot read are skipped and counted.

    The result is cached in one ``.npy`` file, written atomically, whose name holds the
    folder's name, ``size`` and a fingerprint of every file's path, byte size and
    modification time: a later call with an unchanged folder loads it in a moment, and
    adding, removing or editing a file makes a new cache (the stale one is deleted).

    Args:
        root: the folder to scan.
        size: side of the square output images, in pixels.
        cache: read and write the ``.npy`` cache.
        cache_dir: where caches go; default ``<user cache>/image-folders`` (see
            :func:`user_cache_dir`).
        progress: called as ``progress(done, total)`` about every 1% of the decoding.
        workers: threads decoding in parallel (Pillow releases the GIL); default
            ``min(8, cpu count)``.

    Returns:
        An :class:`ImageFolderData` with uint8 ``(N, 3, size, size)`` images.

    Raises:
        DatasetError: ``root`` is not a folder, holds no image file, or none can be read.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    files = sorted(
        (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    if not files:
        raise DatasetError(
            f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in it or its subfolders"
        )
    cache_path = None
    if cache:
        cache_path = _image_cache_path(folder, files, size, cache_dir)
        if cache_path.is_file():
            images = np.load(cache_path)
            return ImageFolderData(images, len(files) - len(images), cache_path)

    images = np.empty((len(files), 3, size, size), dtype=np.uint8)
    readable = np.zeros(len(files), dtype=bool)
    first_error = None
    report_every = max(1, len(files) // 100)
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        for i, result in enumerate(pool.map(partial(_read_square_rgb, size=size), files)):
            if isinstance(result, str):
                first_error = first_error or result
            else:
                images[i], readable[i] = result, True
            if progress is not None and ((i + 1) % report_every == 0 or i + 1 == len(files)):
                progress(i + 1, len(files))
    if not readable.any():
        raise DatasetError(
            f"{folder}: none of its {len(files)} image files could be read "
            f"(the first: {first_error})"
        )
    if not readable.all():
        images = images[readable]

    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(cache_path) as f:
            np.save(f, images)
        prefix = cache_path.name.rsplit("-", 1)[0]  # the same folder and size, any fingerprint
        for stale in cache_path.parent.glob(f"{prefix}-*.npy"):
            if stale != cache_path:
                stale.unlink(missing_ok=True)
    return ImageFolderData(images, int((~readable).sum()), cache_path)


def _image_cache_path(
    folder: Path, files: list[Path], size: int, cache_dir: PathLike | None
) -> Path:
    """``<cache_dir>/<folder name>-<hash of its path>-<size>px-<fingerprint>.npy``."""
    where = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]
    fingerprint = hashlib.sha256(f"{_CACHE_FORMAT} {size}\n".encode())
    for path in files:
        stat = path.stat()
        line = f"{path.relative_to(folder).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n"
        fingerprint.update(line.encode())
    safe_name = re.sub(r"[^A-Za-z0-9_.]+", "_", folder.resolve().name) or "root"
    base = Path(cache_dir) if cache_dir is not None else user_cache_dir() / "image-folders"
    return base / f"{safe_name}-{where}-{size}px-{fingerprint.hexdigest()[:16]}.npy"


def _read_square_rgb(path: Path, size: int) -> np.ndarray | str:
    """One image as uint8 (3, size, size), or a one-line error message if unreadable."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at 1/2..1/8 scale if still >= size
            image = _to_rgb(ImageOps.exif_transpose(image))
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        square = image.resize(
            (size, size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side)
        )
        return np.asarray(square, dtype=np.uint8).transpose(2, 0, 1)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        return f"{path}: {e}"


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with transparent pixels composited over white (the usual product-photo backdrop)."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")
