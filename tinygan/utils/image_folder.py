"""Folders of pictures (CelebA faces, shoes, cat faces...) as square RGB uint8 arrays, cached.

**What is read.** Every file under the folder whose name ends in an image extension
(:data:`IMAGE_EXTENSIONS`, any case), in subfolders too. Links to folders are followed, and
each real folder is scanned once: a second way into a folder already scanned (a link to an
ancestor, which would otherwise loop forever, or a second link to the same folder) is left
out and reported. Nothing is left out silently: every other file (``notes.txt``, a broken
link) is reported as *ignored*, and every image file that gives no picture as *ignored*
(animations) or *unreadable* (with Pillow's reason).

**Pixels.** Each picture is turned upright (EXIF orientation) and converted to 8-bit RGB:

- grey and 1-bit pictures repeat their grey over the three channels;
- transparency (an alpha channel, premultiplied or not; a palette's or a PNG's transparent
  colour) is composited over white, the usual backdrop of product photos;
- palette, CMYK, YCbCr, HSV and LAB pictures go through Pillow's conversion to RGB;
- 16-bit grey (modes ``I;16``, ``I;16L``, ``I;16B``, ``I;16N``) is scaled by its real range,
  ``round(v / 257)`` (65535 -> 255, 32896 -> 128), not clipped at 255 as Pillow's own
  conversion does (which turns a 50% grey white);
- 32-bit integer grey (mode ``I``: 16-bit grey PNGs as older Pillow versions open them,
  integer TIFFs) is taken as 16-bit and scaled the same way when every value lies in
  0..65535; other values have no known scale, and the file is reported unreadable rather
  than guessed at (an 8-bit picture stored as ``I`` comes out dark: its range cannot be
  told from a dark 16-bit one);
- 32-bit float grey (mode ``F``, float TIFFs) is taken as 0..1 when every value lies in
  [0, 1] (the usual convention for float pictures, scaled by 255), else as 0..255 when
  every value lies there (Pillow's own convention for ``F``), else (negative, larger, NaN
  or infinite values) it is reported unreadable.

Pictures with several frames (animated GIF, PNG or WebP, multi-page TIFF) are ignored and
reported: which frame stands for the file is a guess (the first frame of an animation is
often blank or a title), so the choice is left to the user, who can extract the frames.

**Run folders.** A run's outputs are never its inputs. A folder below the root that holds
a training run (its ``config.json`` and a checkpoint, ``losses.csv``, ``samples/`` or a lock:
:data:`RUN_MARKERS`), and each folder given as ``exclude`` (a run's
own output folder, which holds no checkpoint before its first one), is not read, and is
reported in ``run_folders``: otherwise ``--root .`` with the run's folder inside it would
train on the run's own grids, ``losses.png`` and ``progress.gif``, a few more after every
resume (which then no longer continues the same run).

**Cache.** The images are cached in one ``.npz`` archive keyed by the *content* of every
image file (a SHA-256 of its bytes), not by its size and modification time, which a copy,
an archive extraction or an editor can keep while the pixels change. The price is reading
every image file on each call. Measured once on 2,000 64x64 RGB PNGs (25 MB, in the page
cache), one core: hashing them took 0.1 s and decoding them 0.9 s, and a cache hit on that
folder took 0.2 s in all (scan, hash, load). At that rate CelebA's 1.4 GB of JPEGs hash in
about 6 s per core (longer from a cold disk), against minutes of decoding. A cache that
cannot be read back (truncated, of the wrong shape) is rebuilt, and one that cannot be
written (read-only folder, full disk) only costs the next call another decoding: either way
the images are returned and ``cache_warning`` says what happened (the library never
prints).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tinygan.utils.download import user_cache_dir
from tinygan.utils.fileio import atomic_write
from tinygan.utils.idx import DatasetError, PathLike

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
_CACHE_FORMAT = "tinygan-image-folder-v2"  # bump when the preprocessing changes
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
_CACHE_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)
# A folder holding config.json and any of the others holds a training run (one killed
# before its first checkpoint, or run with --checkpoint-every 0, has no checkpoint.npz).
RUN_MARKERS = ("config.json", "checkpoint.npz", "losses.csv", "samples", ".lock")
_A_RUN = "it holds a training run (config.json with a checkpoint, losses.csv or samples/)"
_NEVER_TRAINING_DATA = "a run's outputs are never read as training images"


@dataclass(frozen=True)
class LeftOut:
    """A file or folder under the root that gave no image, and why.

    Attributes:
        path: the file or folder, as reached from the root (through links, unresolved).
        reason: one line saying why it was left out.
    """

    path: Path
    reason: str


@dataclass(frozen=True)
class ImageFolderData:
    """What :func:`load_image_folder` returns.

    Attributes:
        images: uint8 ``(N, 3, size, size)``, RGB, in sorted path order.
        cache_path: the ``.npz`` cache read or written; None with ``cache=False`` or when
            it could not be written.
        ignored: files that are not image files (by extension), pictures with several
            frames, links to folders already scanned, files that are not regular files
            (a broken link, a pipe), sorted by path.
        unreadable: image files that Pillow could not decode, or whose pixel range is
            unknown, and folders that could not be listed, sorted by path.
        cache_warning: one line when the cache was damaged (and rebuilt) or could not be
            written, else None; the images are complete either way.
        run_folders: folders below the root that were not read because they hold a run's
            outputs (see the module docstring), sorted by path.
    """

    images: np.ndarray
    cache_path: Path | None
    ignored: tuple[LeftOut, ...] = ()
    unreadable: tuple[LeftOut, ...] = ()
    cache_warning: str | None = None
    run_folders: tuple[LeftOut, ...] = ()

    @property
    def skipped(self) -> int:
        """How many image files or folders could not be read (``len(unreadable)``)."""
        return len(self.unreadable)

    @property
    def ignored_paths(self) -> list[Path]:
        """The paths of :attr:`ignored`."""
        return [item.path for item in self.ignored]

    @property
    def unreadable_paths(self) -> list[Path]:
        """The paths of :attr:`unreadable`."""
        return [item.path for item in self.unreadable]


def load_image_folder(
    root: PathLike,
    size: int = 64,
    cache: bool = True,
    cache_dir: PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    exclude: Sequence[PathLike] = (),
) -> ImageFolderData:
    """Load every image under a folder (CelebA, shoes, cat faces...) as square RGB arrays.

    The image files (see the module docstring for which, and how their pixels become RGB)
    are read in sorted order, centre-cropped to a square and resized to ``size`` x ``size``
    with Lanczos filtering. Files left out are counted and listed in the result's
    ``ignored`` and ``unreadable``, and folders holding a run in its ``run_folders``.

    The result is cached in one ``.npz`` archive, written atomically, whose name holds the
    folder's name, ``size`` and a fingerprint of every image file's path and content: a
    later call with an unchanged folder reads every file once to hash it (no decoding), and
    adding, removing or editing a file makes a new cache (the stale one is deleted).

    Args:
        root: the folder to scan.
        size: side of the square output images, in pixels.
        cache: read and write the ``.npz`` cache.
        cache_dir: where caches go (created if missing); default
            ``<user cache>/image-folders`` (see :func:`user_cache_dir`).
        progress: called as ``progress(done, total)`` about every 1% of the decoding.
        workers: threads hashing and decoding in parallel (hashlib and Pillow release the
            GIL); default ``min(8, cpu count)``.
        exclude: folders never read, wherever they are below ``root`` (the run's own
            output folder); one that does not exist yet changes nothing.

    Returns:
        An :class:`ImageFolderData` with uint8 ``(N, 3, size, size)`` images.

    Raises:
        DatasetError: ``root`` is not a folder, holds no image file, none gives a picture,
            or it holds a run or lies in an ``exclude`` folder.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    _refuse_run_outputs(folder, exclude)
    files, scanned = _scan(folder, {_folder_key(Path(p)) for p in exclude} - {None})
    if not files:
        found = f"; left out: {folder / scanned[0][1]}: {scanned[0][2]}" if scanned else ""
        raise DatasetError(
            f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in it or its "
            f"subfolders{found}{' and more' if len(scanned) > 1 else ''}"
        )
    names = [path.relative_to(folder).as_posix() for path in files]
    cache_path = warning = None
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        if cache:
            digests = list(pool.map(_digest, files))
            cache_path = _image_cache_path(folder, names, digests, size, cache_dir)
            if cache_path.is_file():
                try:
                    images, left_out = _read_cache(cache_path, names, size)
                except _CACHE_ERRORS as e:
                    warning = f"the cache {cache_path} was damaged ({e}): decoded the images again"
                else:
                    return _result(folder, images, cache_path, scanned + left_out)
        images, left_out, digests = _decode_all(pool, files, names, size, progress)
    if len(left_out) == len(files):
        _, name, reason = left_out[0]
        raise DatasetError(
            f"{folder}: none of its {len(files)} image files could be read "
            f"(the first: {folder / name}: {reason})"
        )
    if cache_path is not None:
        cache_path = _image_cache_path(folder, names, digests, size, cache_dir)  # as decoded
        try:
            _write_cache(cache_path, images, left_out)
        except OSError as e:
            unwritten = (
                f"the cache {cache_path} could not be written ({e}): "
                "the images are loaded, and the next call will decode them again"
            )
            warning = unwritten if warning is None else f"{warning}; {unwritten}"
            cache_path = None
    return _result(folder, images, cache_path, scanned + left_out, warning)


def _result(
    folder: Path,
    images: np.ndarray,
    cache_path: Path | None,
    left_out: list[tuple[str, str, str]],
    warning: str | None = None,
) -> ImageFolderData:
    """The ImageFolderData of ``images`` and the ``(kind, name, reason)`` left out."""
    found: dict[str, list[LeftOut]] = {"ignored": [], "unreadable": [], "run": []}
    for kind, name, reason in sorted(left_out, key=lambda row: row[1]):
        found[kind].append(LeftOut(folder / name, reason))
    return ImageFolderData(
        images, cache_path, tuple(found["ignored"]), tuple(found["unreadable"]), warning,
        tuple(found["run"]),
    )  # fmt: skip


# --------------------------------------------------------------------------- run folders
def _holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds a training run: its config.json and any other of
    :data:`RUN_MARKERS`.
    """
    config, *others = RUN_MARKERS
    return (folder / config).is_file() and any((folder / name).exists() for name in others)


def _folder_key(folder: Path) -> tuple[int, int] | None:
    """The ``(device, inode)`` of a folder, however its path is spelled; None if missing."""
    try:
        stat = folder.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _refuse_run_outputs(folder: Path, exclude: Sequence[PathLike]) -> None:
    """Raise DatasetError if the root itself holds a run or lies in an ``exclude`` folder."""
    if _holds_run(folder):
        raise DatasetError(
            f"{folder}: {_A_RUN}, and {_NEVER_TRAINING_DATA}: give the folder of the pictures"
        )
    for out in exclude:
        if folder.resolve().is_relative_to(Path(out).resolve()):
            raise DatasetError(
                f"{folder}: it lies in this run's output folder {out}, and "
                f"{_NEVER_TRAINING_DATA}: give the folder of the pictures, or another output folder"
            )


# --------------------------------------------------------------------------- scanning
def _scan(
    folder: Path, excluded: set[tuple[int, int]]
) -> tuple[list[Path], list[tuple[str, str, str]]]:
    """The image files under ``folder`` in sorted order, and ``(kind, name, reason)`` of
    everything else (``name``: the path relative to ``folder``, in POSIX form).

    Links to folders are followed once all real subfolders are scanned, and each real
    folder, known by its ``(device, inode)``, is scanned once, so links cannot loop and a
    folder reached both directly and through a link keeps its direct path. A folder that
    holds a run, or whose ``(device, inode)`` is in ``excluded``, is left out (kind "run").
    """
    files: list[Path] = []
    left_out: list[tuple[str, str, str]] = []
    first_visit: dict[tuple[int, int], str] = {}
    plain, linked = [folder], []  # folders to scan: reached directly, reached through a link
    while plain or linked:
        directory = plain.pop() if plain else linked.pop(0)
        name = directory.relative_to(folder).as_posix()
        try:
            stat = directory.stat()
            key = (stat.st_dev, stat.st_ino)
            if key in first_visit:
                reason = f"a second way into {folder / first_visit[key]}, which is scanned once"
                left_out.append(("ignored", name, reason))
                continue
            first_visit[key] = name
            if directory != folder and (key in excluded or _holds_run(directory)):
                what = "this run's output folder" if key in excluded else _A_RUN
                left_out.append(("run", name, f"{what}, and {_NEVER_TRAINING_DATA}"))
                continue
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as e:
            left_out.append(("unreadable", name, f"cannot list this folder: {e.strerror or e}"))
            continue
        for entry in entries:
            path = directory / entry.name
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()  # both follow links
            except OSError:  # a link loop (ELOOP)
                is_dir = is_file = False
            if is_dir:
                (linked if entry.is_symlink() else plain).append(path)
            elif is_file and path.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(path)
            else:
                kind = "unreadable" if path.suffix.lower() in IMAGE_EXTENSIONS else "ignored"
                reason = "not an image file" if is_file else _not_a_file(path)
                left_out.append((kind, path.relative_to(folder).as_posix(), reason))
    files.sort(key=lambda path: path.relative_to(folder).as_posix())
    return files, left_out


def _not_a_file(path: Path) -> str:
    """Why ``path``, neither a folder nor a regular file, is left out."""
    if path.is_symlink() and not path.exists():
        return f"a broken link (to {os.readlink(path)})"
    return "not a regular file"


# --------------------------------------------------------------------------- decoding
def _digest(path: Path) -> str:
    """The SHA-256 of the file's bytes, or ``"unreadable"``."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def _decode_all(
    pool: ThreadPoolExecutor,
    files: list[Path],
    names: list[str],
    size: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[np.ndarray, list[tuple[str, str, str]], list[str]]:
    """Decode every file: images, ``(kind, name, reason)`` of those left out, digests."""
    images = np.empty((len(files), 3, size, size), dtype=np.uint8)
    readable = np.zeros(len(files), dtype=bool)
    left_out, digests = [], []
    report_every = max(1, len(files) // 100)
    for i, (digest, result) in enumerate(pool.map(partial(_read_square_rgb, size=size), files)):
        digests.append(digest)
        if isinstance(result, tuple):
            left_out.append((result[0], names[i], result[1]))
        else:
            images[i], readable[i] = result, True
        if progress is not None and ((i + 1) % report_every == 0 or i + 1 == len(files)):
            progress(i + 1, len(files))
    return (images if readable.all() else images[readable]), left_out, digests


def _read_square_rgb(path: Path, size: int) -> tuple[str, np.ndarray | tuple[str, str]]:
    """``(digest, uint8 (3, size, size))``, or ``(digest, (kind, reason))`` if left out."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        return "unreadable", ("unreadable", e.strerror or str(e))
    digest = hashlib.sha256(raw).hexdigest()  # of the bytes decoded, as _digest computes it
    try:
        with Image.open(io.BytesIO(raw)) as image:
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                return digest, ("ignored", f"{frames} frames (an animation or several pages)")
            image.draft("RGB", (size, size))  # JPEG: decode at 1/2..1/8 scale if still >= size
            image = _to_rgb(ImageOps.exif_transpose(image))
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        square = image.resize(
            (size, size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side)
        )
        return digest, np.asarray(square, dtype=np.uint8).transpose(2, 0, 1)
    except UnidentifiedImageError:
        return digest, ("unreadable", "Pillow does not recognise it as an image")
    except _DECODE_ERRORS as e:
        return digest, ("unreadable", str(e) or type(e).__name__)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow picture as 8-bit RGB (see the module docstring for each mode).

    Raises:
        ValueError: a 32-bit integer or float picture whose values have no known range,
            or a mode Pillow cannot convert to RGB.
    """
    if image.mode.startswith("I") or image.mode == "F":
        return _high_depth_to_grey(image).convert("RGB")
    if image.mode == "La":  # premultiplied alpha: Pillow converts it only to LA
        image = image.convert("LA")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def _high_depth_to_grey(image: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or float grey picture as 8-bit ``L``, scaled by its range.

    A PNG's transparent grey value (``info["transparency"]``) becomes white.
    """
    pixels = np.asarray(image)
    if image.mode == "F":
        bad = ~np.isfinite(pixels)
        if bad.any():
            row, column = np.unravel_index(int(np.argmax(bad)), bad.shape)
            raise ValueError(
                f"{np.count_nonzero(bad):,} float pixels that are NaN or infinite, the first "
                f"at row {row}, column {column}"
            )
        low, high = float(pixels.min()), float(pixels.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"float pixels span {low:g}..{high:g}, neither 0..1 nor 0..255: "
                "their scale is unknown (save the picture as 8 or 16 bits)"
            )
        scale = 255.0 if high <= 1 else 1.0
    else:  # I;16, I;16L, I;16B, I;16N and I
        low, high = int(pixels.min()), int(pixels.max())
        if low < 0 or high > 65535:
            raise ValueError(
                f"{image.mode} pixels span {low}..{high}, outside the 16-bit range 0..65535: "
                "their scale is unknown (save the picture as 8 or 16 bits)"
            )
        scale = 1 / 257  # 65535 -> 255
    grey = np.rint(pixels.astype(np.float64) * scale).astype(np.uint8)
    transparent = image.info.get("transparency")
    if isinstance(transparent, int):
        grey[pixels == transparent] = 255
    return Image.fromarray(grey, "L")


# --------------------------------------------------------------------------- the cache
def _image_cache_path(
    folder: Path, names: list[str], digests: list[str], size: int, cache_dir: PathLike | None
) -> Path:
    """``<cache_dir>/<folder name>-<hash of its path>-<size>px-<fingerprint>.npz``."""
    # os.fsencode: the bytes of a file name, which need not be valid UTF-8 (str.encode
    # would fail on the surrogates that Python decodes such a name's bytes into).
    where = hashlib.sha256(os.fsencode(folder.resolve())).hexdigest()[:8]
    fingerprint = hashlib.sha256(f"{_CACHE_FORMAT} {size}\n".encode())
    for name, digest in zip(names, digests):
        fingerprint.update(os.fsencode(name) + f"\t{digest}\n".encode())
    safe_name = re.sub(r"[^A-Za-z0-9_.]+", "_", folder.resolve().name) or "root"
    base = Path(cache_dir) if cache_dir is not None else user_cache_dir() / "image-folders"
    return base / f"{safe_name}-{where}-{size}px-{fingerprint.hexdigest()[:16]}.npz"


def _read_cache(
    path: Path, names: list[str], size: int
) -> tuple[np.ndarray, list[tuple[str, str, str]]]:
    """The images and the ``(kind, name, reason)`` left out, as :func:`_write_cache` wrote.

    Raises:
        One of ``_CACHE_ERRORS``: the archive is damaged or does not fit the folder.
    """
    archive = np.load(path, allow_pickle=False)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError("it is a single array, not an .npz archive")
    with archive:
        images, left_out = archive["images"], archive["left_out"]
    expected = (len(names) - len(left_out), 3, size, size)
    if images.dtype != np.uint8 or images.shape != expected:
        raise ValueError(f"it holds {images.dtype} {images.shape}, expected uint8 {expected}")
    rows = [tuple(map(str, row)) for row in left_out.reshape(-1, 3)]
    known = set(names)
    if len(rows) != len(left_out) or not all(
        kind in ("ignored", "unreadable") and name in known for kind, name, _ in rows
    ):
        raise ValueError("its list of files left out does not match the folder")
    return images, rows


def _write_cache(path: Path, images: np.ndarray, left_out: list[tuple[str, str, str]]) -> None:
    """Write the cache atomically, then delete this folder's caches for other contents.

    Raises:
        OSError: the cache folder cannot be created or the file cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        np.savez(f, images=images, left_out=np.array(left_out, dtype=str).reshape(-1, 3))
    prefix = path.name.rsplit("-", 1)[0]  # the same folder and size, any fingerprint
    for stale in path.parent.glob(f"{prefix}-*.np[yz]"):  # .npy: the first format's caches
        if stale != path:
            with suppress(OSError):
                stale.unlink()
