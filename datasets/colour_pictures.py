"""A folder of about 3,900 colour pictures for the GAN demos: the emoji of Noto Color Emoji.

    sudo apt install fonts-noto-color-emoji          # Debian, Ubuntu
    python datasets/colour_pictures.py                # -> ~/.cache/tinygan/noto-emoji-64/
    python demos/image_folder_dcgan.py --root ~/.cache/tinygan/noto-emoji-64 --image-size 32

Google's Noto Color Emoji font keeps every emoji as a PNG picture inside the font file (the
``CBDT`` table holds the PNGs, the ``CBLC`` table says where each one is), 136x128 pixels
with transparency. This script copies those pictures out, so no font rendering is involved:
each one is centred on a white square (136x136), resized to ``--size`` with Lanczos
filtering and written as an RGB PNG, ``glyph_<id>.png`` after its glyph number in the font.
Pictures that occur twice in the font are written once. Version 2.042 of the font (Debian
12's) holds 3,926 pictures, 3,916 of them different: faces, people in six skin tones,
animals, food, objects, symbols and about 340 flags (countries and some of their regions).

Licence: the pictures are Google's Noto Emoji artwork, Apache License 2.0 (the flags are
in the public domain); the font file is under the SIL Open Font License 1.1. The output
folder gets an ``ATTRIBUTION.txt`` that says so. Elsewhere than Debian, pass ``--font``
with the path of a NotoColorEmoji.ttf (another distribution's, or the one in the
noto-emoji repository); its vector-only sibling Noto-COLRv1.ttf holds no pictures.

The output folder is built under a temporary name beside it and renamed when complete, so
an interrupted run leaves no half-filled folder under that name; it must not exist yet, or
be empty.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from tinygan.data import DatasetError, user_cache_dir
from tinygan.utils.cli import parse_config, require_positive

DEBIAN_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
INSTALL_HINT = (
    "install it with `sudo apt install fonts-noto-color-emoji` (Debian, Ubuntu), or pass "
    "--font with the path of a NotoColorEmoji.ttf from https://github.com/googlefonts/noto-emoji"
)
ATTRIBUTION = """\
These pictures are the emoji of Noto Color Emoji {version}, copied out of the font file
{font}
by tinygan's datasets/colour_pictures.py: {count:,} of its {different:,} different pictures,
each centred on white and resized to {size}x{size}.

Artwork: Copyright Google Inc., Noto Emoji, https://github.com/googlefonts/noto-emoji
Licence: Apache License 2.0, https://www.apache.org/licenses/LICENSE-2.0
(flag pictures: public domain; the font file itself: SIL Open Font License 1.1).
"""

# Bytes of glyph metrics in front of the PNG's length, by CBDT image format (17: small
# metrics, 18: big metrics, 19: none, the metrics are in CBLC). Each format then has a
# uint32 byte count and the PNG file itself.
_METRICS_BYTES = {17: 5, 18: 8, 19: 0}
# Offset arrays of CBLC index subtables: format 1 has uint32 offsets, format 3 uint16.
_OFFSET_TYPES = {1: "I", 3: "H"}


@dataclass
class ColourConfig:
    """Copy the emoji pictures of Noto Color Emoji into a folder of RGB PNGs.

    Attributes:
        font: the font file (a CBDT colour font); default Debian's NotoColorEmoji.ttf.
        out: the folder to create; default <user cache>/noto-emoji-<size>.
        size: side of the square pictures, in pixels.
        count: keep only this many pictures, evenly spread over the font (0: all).
    """

    font: str = DEBIAN_FONT
    out: str = ""
    size: int = 64
    count: int = 0

    def __post_init__(self) -> None:
        require_positive(self, "size")
        if self.count < 0:
            raise ValueError(f"count must be 0 (all) or positive, got {self.count}")


def sfnt_tables(font: bytes) -> dict[str, bytes]:
    """The tables of a TrueType/OpenType font file, by tag.

    The file starts with a 12-byte header (version, ``numTables`` and three search
    hints), then one 16-byte record per table: tag, checksum, offset, length.

    Raises:
        DatasetError: the bytes are not a single font (a collection, say) or are truncated.
    """
    if len(font) < 12 or font[:4] not in (b"\x00\x01\x00\x00", b"OTTO", b"true"):
        raise DatasetError(f"not a TrueType/OpenType font (it starts with {font[:4]!r})")
    (count,) = struct.unpack_from(">H", font, 4)
    if len(font) < 12 + 16 * count:
        raise DatasetError(f"truncated font: {len(font)} bytes cannot hold {count} table records")
    tables = {}
    for i in range(count):
        tag, _, offset, length = struct.unpack_from(">4sIII", font, 12 + 16 * i)
        if offset + length > len(font):
            raise DatasetError(f"truncated font: table {tag.decode('latin-1')!r} runs past the end")
        tables[tag.decode("latin-1")] = font[offset : offset + length]
    return tables


def font_version(tables: dict[str, bytes]) -> str:
    """The font's revision from its ``head`` table (a 16.16 fixed-point number), e.g. "2.042"."""
    if "head" not in tables:
        raise DatasetError("no head table: not a complete font")
    (revision,) = struct.unpack_from(">i", tables["head"], 4)
    return f"{revision / 65536:.3f}"


def cbdt_pictures(tables: dict[str, bytes]) -> Iterator[tuple[int, bytes]]:
    """``(glyph id, PNG bytes)`` of every picture in the font's largest bitmap strike.

    ``CBLC`` starts with a version and the number of strikes (picture sizes), then one
    48-byte record per strike: the offset of its index subtable array, and, at bytes 44-45,
    its size in pixels per em. The array lists glyph ranges ``(first, last, offset)``;
    each range's subtable header gives its index format, image format and the offset of
    its pictures in ``CBDT``, and then (formats 1 and 3) the offset of each glyph's
    picture, one more than the glyphs so that consecutive offsets delimit a picture.
    A glyph whose two offsets are equal has no picture.

    Raises:
        DatasetError: the font has no ``CBDT``/``CBLC`` tables, or stores its pictures in
            a format not read here (read: index formats 1 and 3; image formats 17, 18, 19).
    """
    if "CBLC" not in tables or "CBDT" not in tables:
        kinds = [tag for tag in ("COLR", "SVG ", "sbix") if tag in tables]
        raise DatasetError(
            "the font has no PNG pictures (no CBDT/CBLC tables)"
            + (f"; it draws its colour glyphs with {'/'.join(kinds).strip()}" if kinds else "")
        )
    cblc, cbdt = tables["CBLC"], tables["CBDT"]
    (strikes,) = struct.unpack_from(">I", cblc, 4)
    records = [8 + 48 * i for i in range(strikes)]
    strike = max(records, key=lambda r: cblc[r + 44])  # ppemX: the largest pictures
    array_offset, _, ranges = struct.unpack_from(">III", cblc, strike)
    for i in range(ranges):
        first, last, sub_offset = struct.unpack_from(">HHI", cblc, array_offset + 8 * i)
        header = array_offset + sub_offset
        index_format, image_format, data_offset = struct.unpack_from(">HHI", cblc, header)
        if index_format not in _OFFSET_TYPES or image_format not in _METRICS_BYTES:
            raise DatasetError(
                f"glyphs {first}-{last}: CBLC index format {index_format} with CBDT image "
                f"format {image_format} is not supported (only index formats 1 and 3 with "
                "image formats 17, 18 and 19)"
            )
        offset_type = _OFFSET_TYPES[index_format]
        offsets = struct.unpack_from(f">{last - first + 2}{offset_type}", cblc, header + 8)
        for glyph, start, end in zip(range(first, last + 1), offsets, offsets[1:]):
            if end > start:
                at = data_offset + start + _METRICS_BYTES[image_format]
                (length,) = struct.unpack_from(">I", cbdt, at)
                yield glyph, cbdt[at + 4 : at + 4 + length]


def square_rgb(png: bytes, size: int) -> Image.Image:
    """A picture centred on a white square as wide as its longer side, resized to ``size``."""
    with Image.open(io.BytesIO(png)) as picture:
        picture = picture.convert("RGBA")
    side = max(picture.size)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    square.alpha_composite(picture, ((side - picture.width) // 2, (side - picture.height) // 2))
    return square.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)


def distinct(pictures: Iterable[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """The pictures in order, each PNG file kept only the first time it occurs."""
    seen: set[bytes] = set()
    kept = []
    for glyph, png in pictures:
        if png not in seen:
            seen.add(png)
            kept.append((glyph, png))
    return kept


def evenly_spread(items: list, count: int) -> list:
    """``count`` items at evenly spaced positions, first and last included (all if 0)."""
    if count == 0 or count >= len(items):
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def write_folder(pictures: list[tuple[int, bytes]], out: Path, size: int, attribution: str) -> None:
    """Write the pictures and ``ATTRIBUTION.txt`` into a new folder ``out``, all or nothing.

    Raises:
        DatasetError: ``out`` exists and is not an empty folder.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(
            f"{out} already exists and is not empty: remove it or pick another --out"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{os.getpid()}.tmp"
    staging.mkdir()
    try:
        for glyph, png in pictures:
            square_rgb(png, size).save(staging / f"glyph_{glyph:05d}.png", optimize=True)
        (staging / "ATTRIBUTION.txt").write_text(attribution, encoding="utf-8")
        os.replace(staging, out)  # atomic; replaces an empty folder
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def main(argv: list[str] | None = None) -> None:
    config = parse_config(ColourConfig, argv)
    font = Path(config.font).expanduser()
    if not font.is_file():
        raise SystemExit(f"{font}: no such font file; {INSTALL_HINT}")
    out = (
        Path(config.out).expanduser()
        if config.out
        else user_cache_dir() / f"noto-emoji-{config.size}"
    )
    try:
        tables = sfnt_tables(font.read_bytes())
        every = list(cbdt_pictures(tables))
        version = font_version(tables)
    except DatasetError as e:
        raise SystemExit(f"{font}: {e}") from None
    except (struct.error, IndexError) as e:  # a table shorter than its own offsets say
        raise SystemExit(f"{font}: truncated or corrupt font tables ({e})") from None
    different = distinct(every)
    pictures = evenly_spread(different, config.count)
    attribution = ATTRIBUTION.format(
        version=version, font=font, count=len(pictures), different=len(different), size=config.size
    )
    try:
        write_folder(pictures, out, config.size, attribution)
    except (DatasetError, OSError) as e:
        raise SystemExit(f"cannot write the pictures: {e}") from None
    print(
        f"wrote {len(pictures):,} pictures of {config.size}x{config.size} to {out} "
        f"(the font, version {version}, holds {len(every):,}, {len(different):,} different)"
    )


if __name__ == "__main__":
    main()
