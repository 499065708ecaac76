"""datasets/colour_pictures.py (emoji pictures out of a CBDT colour font) and the colour
sample it made, datasets/colour_sample/.

The font parser is tested on small fonts built here, byte by byte, with known pictures;
the tests marked "real font" run where Debian's fonts-noto-color-emoji is installed."""

import importlib.util
import io
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinygan import data

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "datasets" / "colour_sample"
SCRIPT = REPO / "datasets" / "colour_pictures.py"
_spec = importlib.util.spec_from_file_location("colour_pictures", SCRIPT)
colour_pictures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = colour_pictures  # dataclasses look their module up there
_spec.loader.exec_module(colour_pictures)


# --------------------------------------------------------------------------- helpers
def saturation(images: np.ndarray) -> np.ndarray:
    """HSV saturation (max - min) / max of each pixel of uint8 (N, 3, H, W) images, in [0, 1]."""
    x = images.astype(np.float64)
    high, low = x.max(axis=1), x.min(axis=1)
    return np.where(high > 0, (high - low) / np.maximum(high, 1), 0.0)


def png(width: int, height: int, rgba: tuple[int, int, int, int]) -> bytes:
    """A PNG file of one colour."""
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), rgba).save(buffer, format="PNG")
    return buffer.getvalue()


def sfnt(tables: dict[str, bytes]) -> bytes:
    """A font file holding these tables: header, table records, then the tables in order."""
    header = struct.pack(">4sHHHH", b"\x00\x01\x00\x00", len(tables), 0, 0, 0)
    offset = len(header) + 16 * len(tables)
    records, body = b"", b""
    for tag, table in tables.items():
        records += struct.pack(">4sIII", tag.encode("latin-1"), 0, offset + len(body), len(table))
        body += table
    return header + records + body


def head_table(revision: float) -> bytes:
    """A 54-byte ``head`` table; only fontRevision (bytes 4-7, 16.16 fixed point) matters."""
    return struct.pack(">HHi", 1, 0, round(revision * 65536)) + bytes(46)


def bitmap_tables(
    strikes: list[tuple[int, list[bytes | None]]], index_format: int = 1, image_format: int = 17
) -> dict[str, bytes]:
    """``CBLC`` and ``CBDT`` tables with one strike per ``(ppem, pictures)``.

    A strike's pictures are glyphs 1, 2, ...; None is a glyph without a picture.
    """
    metrics = bytes({17: 5, 18: 8, 19: 0}[image_format])
    offset_type = {1: "I", 3: "H", 2: "I"}[index_format]  # format 2 only to be refused
    cbdt = struct.pack(">HH", 3, 0)
    arrays = b""
    array_start = 8 + 48 * len(strikes)
    records = b""
    for ppem, pictures in strikes:
        data_offset, offsets = len(cbdt), [0]
        for picture in pictures:
            if picture is not None:
                cbdt += metrics + struct.pack(">I", len(picture)) + picture
            offsets.append(len(cbdt) - data_offset)
        last = len(pictures)
        subtable = struct.pack(">HHI", index_format, image_format, data_offset)
        subtable += struct.pack(f">{last + 1}{offset_type}", *offsets)
        array = struct.pack(">HHI", 1, last, 8) + subtable
        records += struct.pack(">IIII", array_start + len(arrays), len(array), 1, 0)
        records += bytes(24) + struct.pack(">HHBBBb", 1, last, ppem, ppem, 32, 1)
        arrays += array
    cblc = struct.pack(">HHI", 3, 0, len(strikes)) + records + arrays
    return {"CBDT": cbdt, "CBLC": cblc}


RED = png(6, 4, (255, 0, 0, 255))  # wider than tall: centred on a white 6x6 square
HALF_BLUE = png(4, 4, (0, 0, 255, 128))  # half transparent: over white, (127, 127, 255)
GREEN = png(4, 4, (0, 255, 0, 255))


def make_font(path: Path, **formats: int) -> Path:
    """A font with a large strike (red, no picture, blue, red again) and a small one (green)."""
    big = (109, [RED, None, HALF_BLUE, RED])
    small = (20, [GREEN])
    path.write_bytes(sfnt({"head": head_table(2.042), **bitmap_tables([small, big], **formats)}))
    return path


# --------------------------------------------------------------------------- the font parser
@pytest.mark.parametrize(
    "index_format, image_format", [(1, 17), (1, 18), (1, 19), (3, 17)], ids=str
)
def test_pictures_come_out_of_the_largest_strike_by_glyph(tmp_path, index_format, image_format):
    font = make_font(tmp_path / "f.ttf", index_format=index_format, image_format=image_format)
    tables = colour_pictures.sfnt_tables(font.read_bytes())
    assert colour_pictures.font_version(tables) == "2.042"
    pictures = list(colour_pictures.cbdt_pictures(tables))
    assert pictures == [(1, RED), (3, HALF_BLUE), (4, RED)]  # glyph 2 has none; no GREEN
    assert colour_pictures.distinct(pictures) == [(1, RED), (3, HALF_BLUE)]


def test_square_rgb_centres_on_white_and_composites_alpha():
    red = np.asarray(colour_pictures.square_rgb(RED, 6))
    assert red.shape == (6, 6, 3) and red.dtype == np.uint8
    assert (red[0] == 255).all() and (red[5] == 255).all()  # the padding rows are white
    assert (red[1:5] == (255, 0, 0)).all()
    blue = np.asarray(colour_pictures.square_rgb(HALF_BLUE, 4))
    assert (blue == (127, 127, 255)).all()
    assert colour_pictures.square_rgb(RED, 3).size == (3, 3)


def test_evenly_spread_keeps_the_ends():
    items = list(range(10))
    assert colour_pictures.evenly_spread(items, 4) == [0, 3, 6, 9]
    assert colour_pictures.evenly_spread(items, 0) == items
    assert colour_pictures.evenly_spread(items, 20) == items


def test_script_writes_the_folder_that_load_image_folder_reads(tmp_path, capsys):
    font = make_font(tmp_path / "f.ttf")
    out = tmp_path / "cache" / "pictures"
    colour_pictures.main(["--font", str(font), "--out", str(out), "--size", "6"])
    assert "wrote 2 pictures of 6x6" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "ATTRIBUTION.txt", "glyph_00001.png", "glyph_00003.png"
    ]  # fmt: skip
    assert "Apache License 2.0" in (out / "ATTRIBUTION.txt").read_text()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left
    folder = data.load_image_folder(out, size=6, cache=False)  # 6: no resampling, exact pixels
    assert folder.images.shape == (2, 3, 6, 6) and folder.skipped == 0
    red, blue = folder.images.transpose(0, 2, 3, 1)  # (H, W, RGB) each
    assert (red[[0, 5]] == 255).all() and (red[1:5] == (255, 0, 0)).all()
    assert (blue == (127, 127, 255)).all()


def test_script_count_picks_evenly_and_an_empty_folder_is_filled(tmp_path, capsys):
    font = make_font(tmp_path / "f.ttf")
    (tmp_path / "out").mkdir()
    colour_pictures.main(["--font", str(font), "--out", str(tmp_path / "out"), "--count", "1"])
    assert "wrote 1 pictures of 64x64" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["glyph_00001.png"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"root:x:0:0:root", "not a TrueType/OpenType font"),
        (b"\x00\x01\x00\x00\x00\x05" + bytes(20), "truncated font"),
        (sfnt({"COLR": bytes(14), "head": head_table(2.0)}), "no PNG pictures.*COLR"),
        (sfnt(bitmap_tables([(109, [RED])])), "no head table"),
        (
            sfnt({"head": head_table(2.0), "CBLC": struct.pack(">HHI", 3, 0, 1), "CBDT": b"x"}),
            "truncated or corrupt font tables",
        ),
    ],
    ids=["not a font", "truncated", "vector colour font", "no head", "short CBLC"],
)
def test_wrong_fonts_are_clear_errors(tmp_path, content, message):
    font = tmp_path / "f.ttf"
    font.write_bytes(content)
    with pytest.raises(SystemExit, match=message):
        colour_pictures.main(["--font", str(font), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_unsupported_index_format_is_named(tmp_path):
    font = make_font(tmp_path / "f.ttf", index_format=2)
    with pytest.raises(SystemExit, match="index format 2 with CBDT image format 17"):
        colour_pictures.main(["--font", str(font), "--out", str(tmp_path / "out")])


def test_missing_font_says_how_to_install_it(tmp_path):
    with pytest.raises(SystemExit, match=r"apt install fonts-noto-color-emoji.*--font"):
        colour_pictures.main(["--font", str(tmp_path / "nothing.ttf")])


def test_a_full_output_folder_is_left_alone(tmp_path):
    font = make_font(tmp_path / "f.ttf")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.png").write_bytes(b"keep me")
    with pytest.raises(SystemExit, match="already exists and is not empty"):
        colour_pictures.main(["--font", str(font), "--out", str(tmp_path / "out")])
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.png"]


# --------------------------------------------------------------------------- the sample
def test_colour_sample_is_64_colourful_pictures():
    folder = data.load_image_folder(SAMPLE, size=32, cache=False)
    images = folder.images
    assert images.shape == (64, 3, 32, 32) and images.dtype == np.uint8 and folder.skipped == 0
    assert len({image.tobytes() for image in images}) == 64  # 64 different pictures
    drawn = images.min(axis=1) < 250  # pixels that are not the white backdrop
    assert 0.2 < drawn.mean() < 0.9
    colour = saturation(images)[drawn].mean()
    grey = np.repeat(images.mean(axis=1, keepdims=True), 3, axis=1).round().astype(np.uint8)
    assert saturation(grey).max() == 0  # the measure says 0 for grey pictures...
    assert colour > 0.35, colour  # ...and much more for these (0.445; 0.47 for the font at 64 px)
    assert ((SAMPLE / "LICENSE").read_text().split()[:3]) == ["Apache", "License", "Version"]
    assert "Noto Color Emoji" in (SAMPLE / "ATTRIBUTION.txt").read_text()


# --------------------------------------------------------------------------- the real font
def real_font_tables() -> dict[str, bytes]:
    font = Path(colour_pictures.DEBIAN_FONT)
    if not font.is_file():
        pytest.skip(f"real font: {font} is absent (apt install fonts-noto-color-emoji)")
    return colour_pictures.sfnt_tables(font.read_bytes())


def test_real_font_holds_thousands_of_emoji_pictures():
    pictures = colour_pictures.distinct(colour_pictures.cbdt_pictures(real_font_tables()))
    assert len(pictures) >= 3000
    for _, picture in pictures[:: len(pictures) // 20]:
        with Image.open(io.BytesIO(picture)) as image:
            assert image.format == "PNG" and min(image.size) >= 100


def test_real_font_remakes_the_shipped_sample(tmp_path, capsys):
    version = colour_pictures.font_version(real_font_tables())
    made_from = re.search(r"Noto Color Emoji (\S+),", (SAMPLE / "ATTRIBUTION.txt").read_text())
    if version != made_from.group(1):
        pytest.skip(f"real font: version {version}, the sample comes from {made_from.group(1)}")
    out = tmp_path / "sample"
    colour_pictures.main(["--out", str(out), "--size", "32", "--count", "64"])
    assert "wrote 64 pictures" in capsys.readouterr().out
    made = sorted(p.name for p in out.glob("*.png"))
    assert made == sorted(p.name for p in SAMPLE.glob("*.png"))
    for name in made:
        assert np.array_equal(
            np.asarray(Image.open(out / name)), np.asarray(Image.open(SAMPLE / name))
        ), name
