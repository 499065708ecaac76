"""tinygan.data: IDX files, downloads (from a local server only), lookup order, image
folders and batches. No test touches the internet: every dataset's mirrors point at a
closed local port unless a test serves the files itself."""

import dataclasses
import errno
import functools
import gzip
import hashlib
import http.server
import os
import re
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinygan import data
from tinygan.data import DatasetError, DownloadError
from tinygan.utils import image_folder
from tinygan.utils.download import download
from tinygan.utils.idx import read_idx

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "datasets" / "mnist"
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
TRAIN_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")


# --------------------------------------------------------------------------- helpers
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting fails at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_split(folder: Path, names, n: int, gz: bool = True) -> None:
    """A tiny MNIST-like split of n images (image i is filled with the value i)."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.repeat(np.arange(n, dtype=np.uint8), 28 * 28).reshape(n, 28, 28)
    labels = (np.arange(n) % 10).astype(np.uint8)
    for name, array in zip(names, (images, labels)):
        raw = idx_bytes(array)
        if gz:
            (folder / name).write_bytes(gzip.compress(raw))
        else:
            (folder / name.removesuffix(".gz")).write_bytes(raw)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No network, no real cache, no TINYGAN_DATA, no system folders, no proxy."""
    dead = (closed_port_url(),)
    monkeypatch.setattr(data, "MNIST", dataclasses.replace(data.MNIST, mirrors=dead))
    monkeypatch.setattr(
        data,
        "FASHION_MNIST",
        dataclasses.replace(data.FASHION_MNIST, mirrors=dead, system_dirs=()),
    )
    monkeypatch.delenv("TINYGAN_DATA", raising=False)
    for proxy in ("http_proxy", "https_proxy", "all_proxy"):  # local servers, no proxy
        monkeypatch.delenv(proxy, raising=False)
        monkeypatch.delenv(proxy.upper(), raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base URL, folder)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", www
    httpd.shutdown()
    httpd.server_close()


# --------------------------------------------------------------------------- IDX files
def test_read_idx_bundled_mnist_test_set():
    images = read_idx(BUNDLED / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(BUNDLED / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert labels[0] == 7 and set(np.unique(labels)) == set(range(10))
    assert images.max() == 255 and images[0].std() > 0
    images.flags.writeable = True  # a private, writable copy


def test_bundled_files_have_the_published_md5():
    for name in TEST_FILES:
        digest = hashlib.md5((BUNDLED / name).read_bytes()).hexdigest()
        assert digest == data.MNIST.md5[name]


def test_read_idx_raw_uncompressed_copy(tmp_path):
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress((BUNDLED / TEST_FILES[1]).read_bytes()))
    np.testing.assert_array_equal(read_idx(raw), data.read_idx(BUNDLED / TEST_FILES[1]))


@pytest.mark.parametrize(
    "code, dtype", [(0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32)]
)
def test_read_idx_other_types_come_back_in_native_byte_order(tmp_path, code, dtype):
    array = np.arange(-3, 3).astype(dtype).reshape(2, 3)
    (tmp_path / "x.idx").write_bytes(idx_bytes(array, code))
    back = read_idx(tmp_path / "x.idx")
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda raw: b"\x01" + raw[1:], "not an IDX file"),
        (lambda raw: raw[:2] + b"\x07" + raw[3:], "not an IDX file"),  # unknown type code
        (lambda raw: b"", "not an IDX file"),
        (lambda raw: raw[:10], "truncated IDX header"),
        (lambda raw: raw[:-100], "truncated"),
        (lambda raw: raw + b"\x00", "too long"),
        (lambda raw: raw[:12] + struct.pack(">I", 29) + raw[16:], "truncated"),  # 28x29 dims
    ],
)
def test_read_idx_rejects_wrong_files(tmp_path, mangle, message):
    raw = idx_bytes(read_idx(BUNDLED / TEST_FILES[0])[:50])  # (50, 28, 28) uint8
    for name, content in (("bad-idx", mangle(raw)), ("bad-idx.gz", gzip.compress(mangle(raw)))):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(DatasetError, match=message) as info:
            read_idx(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda gz: gz[: len(gz) // 2],  # cut short
        lambda gz: gz[:2000] + bytes(200) + gz[2200:],  # damaged deflate data
        lambda gz: gz[:-8] + b"\xff" * 8,  # wrong CRC and length trailer
    ],
)
def test_read_idx_rejects_broken_gzip(tmp_path, mangle):
    path = tmp_path / "broken.gz"
    path.write_bytes(mangle((BUNDLED / TEST_FILES[0]).read_bytes()))
    with pytest.raises(DatasetError, match="broken gzip") as info:
        read_idx(path)
    assert "broken.gz" in str(info.value)


def test_load_mnist_checks_shapes_and_labels(tmp_path):
    write_split(tmp_path / "a", TEST_FILES, 5)
    (tmp_path / "a" / TEST_FILES[1]).write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8))))
    with pytest.raises(DatasetError, match="expected 5 MNIST labels"):
        data.load_mnist("test", root=tmp_path / "a", download=False)
    write_split(tmp_path / "b", TEST_FILES, 5)
    small = np.zeros((5, 27, 27), np.uint8)
    (tmp_path / "b" / TEST_FILES[0]).write_bytes(gzip.compress(idx_bytes(small)))
    with pytest.raises(DatasetError, match=r"expected MNIST images, uint8 \(N, 28, 28\)"):
        data.load_mnist("test", root=tmp_path / "b", download=False)


def test_load_mnist_rejects_unknown_split():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.load_mnist("validation", download=False)


# --------------------------------------------------------------------------- downloads
def test_download_with_right_md5_lands_atomically(server, tmp_path):
    url, www = server
    payload = b"tinygan" * 1000
    (www / "f.bin").write_bytes(payload)
    dest = tmp_path / "new" / "sub" / "f.bin"
    got = download([url + "f.bin"], dest, hashlib.md5(payload).hexdigest(), timeout=2)
    assert got == dest and dest.read_bytes() == payload
    assert leftovers(dest.parent) == []


def test_download_with_wrong_md5_raises_and_leaves_nothing(server, tmp_path):
    url, www = server
    (www / "f.bin").write_bytes(b"not what we expect")
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(DownloadError, match="MD5 .*expected 0123") as info:
        download([url + "f.bin"], dest, "0123" * 8, timeout=2)
    assert url + "f.bin" in str(info.value)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_download_falls_through_dead_and_missing_mirrors(server, tmp_path):
    url, www = server
    (www / "f.bin").write_bytes(b"payload")
    mirrors = [closed_port_url() + "f.bin", url + "missing/f.bin", url + "f.bin"]
    dest = tmp_path / "f.bin"
    download(mirrors, dest, hashlib.md5(b"payload").hexdigest(), timeout=2)
    assert dest.read_bytes() == b"payload"


def test_download_skips_a_stalled_mirror_after_the_timeout(server, tmp_path):
    url, www = server
    (www / "f.bin").write_bytes(b"payload")
    with socket.socket() as stalled:  # accepts connections (backlog) but never answers
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(1)
        stalled_url = f"http://127.0.0.1:{stalled.getsockname()[1]}/f.bin"
        start = time.monotonic()
        download(
            [stalled_url, url + "f.bin"],
            tmp_path / "f.bin",
            hashlib.md5(b"payload").hexdigest(),
            timeout=0.3,
        )
        assert time.monotonic() - start < 3
    assert (tmp_path / "f.bin").read_bytes() == b"payload"


def test_download_error_names_every_mirror(tmp_path):
    mirrors = [closed_port_url() + "a.gz", closed_port_url() + "b.gz"]
    with pytest.raises(DownloadError, match="could not download a.gz from") as info:
        download(mirrors, tmp_path / "a.gz", "0" * 32, timeout=0.5)
    assert all(m in str(info.value) for m in mirrors)
    assert list(tmp_path.iterdir()) == []


def test_load_mnist_downloads_into_the_cache(server, monkeypatch, tmp_path):
    url, www = server
    for name in TEST_FILES:
        shutil.copy(BUNDLED / name, www / name)
    monkeypatch.setattr(data, "MNIST", dataclasses.replace(data.MNIST, mirrors=(url,)))
    images, labels = data.load_mnist("test", download=True, timeout=2)
    assert images.shape == (10000, 28, 28) and labels[0] == 7
    cache = tmp_path / "xdg-cache" / "tinygan" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(TEST_FILES)


# --------------------------------------------------------------------------- lookup order
def test_lookup_order_root_alone_else_tinygan_data_then_cache(monkeypatch, tmp_path):
    write_split(tmp_path / "root", TEST_FILES, 1)
    write_split(tmp_path / "env" / "mnist", TEST_FILES, 2, gz=False)  # uncompressed names
    write_split(tmp_path / "xdg-cache" / "tinygan" / "mnist", TEST_FILES, 3)
    monkeypatch.setenv("TINYGAN_DATA", str(tmp_path / "env"))

    def count(**kwargs):
        return len(data.load_mnist("test", download=False, **kwargs)[0])

    assert count(root=tmp_path / "root") == 1
    assert count() == 2
    monkeypatch.delenv("TINYGAN_DATA")
    assert count() == 3
    monkeypatch.delenv("XDG_CACHE_HOME")  # then the cache is ~/.cache/tinygan
    write_split(tmp_path / "home" / ".cache" / "tinygan" / "mnist", TEST_FILES, 4)
    assert count() == 4
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
    assert count() == 4


def test_fashion_mnist_searches_its_system_folder(monkeypatch, tmp_path):
    write_split(tmp_path / "usr-share", TEST_FILES, 6)
    fashion = dataclasses.replace(data.FASHION_MNIST, system_dirs=(tmp_path / "usr-share",))
    monkeypatch.setattr(data, "FASHION_MNIST", fashion)
    assert len(data.load_fashion_mnist("test", download=False)[0]) == 6
    assert data.dataset_search_dirs(fashion)[-1] == tmp_path / "usr-share"


def test_missing_split_without_download_names_the_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYGAN_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetError, match="train split not found") as info:
        data.load_mnist("train", download=False)
    assert str(tmp_path / "env" / "mnist") in str(info.value)
    assert str(tmp_path / "xdg-cache" / "tinygan" / "mnist") in str(info.value)


LOADERS = {  # (root, download, log) -> the train split or its images
    "load_mnist": lambda *args: data.load_mnist("train", *args[:2]),
    "load_fashion_mnist": lambda *args: data.load_fashion_mnist("train", *args[:2]),
    "load_mnist_or_bundled": lambda *args: data.load_mnist_or_bundled(*args),
    "load_training_images": lambda *args: data.load_training_images("mnist", *args),
}


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("download", [False, True])
def test_missing_root_is_an_error_naming_it_and_is_never_created(tmp_path, loader, download):
    root = tmp_path / "typo" / "mnist"
    with pytest.raises(DatasetError, match="does not exist") as info:
        LOADERS[loader](root, download, None)
    assert str(root) in str(info.value)
    assert not (tmp_path / "typo").exists()
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(DatasetError, match="is not a folder"):
        LOADERS[loader](tmp_path / "a-file", download, None)


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("download", [False, True])
def test_root_without_the_files_is_never_replaced(monkeypatch, tmp_path, loader, download):
    """Neither $TINYGAN_DATA nor the bundled digits stand in for a root the user named."""
    for name in ("mnist", "fashion-mnist"):
        write_split(tmp_path / "env" / name, TRAIN_FILES, 3)
    monkeypatch.setenv("TINYGAN_DATA", str(tmp_path / "env"))
    write_split(tmp_path / "half", TRAIN_FILES[:1], 3)  # the images, not the labels
    (tmp_path / "empty").mkdir()
    lines = []
    for root, missing in (("empty", TRAIN_FILES), ("half", TRAIN_FILES[1:])):
        with pytest.raises(DatasetError, match="train split not found") as info:
            LOADERS[loader](tmp_path / root, download, lines.append)
        message = str(info.value)
        assert f"the root {tmp_path / root} lacks {' and '.join(missing)}" in message
        assert ("could not download" in message) == download
    assert lines == [] and sorted(p.name for p in (tmp_path / "empty").iterdir()) == []


def test_download_into_a_given_root(server, monkeypatch, tmp_path):
    url, www = server
    for name in TRAIN_FILES:
        shutil.copy(BUNDLED / name.replace("train", "t10k"), www / name)
    md5 = {name: data.MNIST.md5[name.replace("train", "t10k")] for name in TRAIN_FILES}
    monkeypatch.setattr(data, "MNIST", dataclasses.replace(data.MNIST, mirrors=(url,), md5=md5))
    (tmp_path / "root").mkdir()
    lines = []
    images, _ = data.load_mnist_or_bundled(root=tmp_path / "root", log=lines.append, timeout=2)
    assert len(images) == 10000 and lines == []
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == sorted(TRAIN_FILES)


def test_real_fashion_mnist_test_split(fashion_mnist_root):
    images, labels = data.load_fashion_mnist("test", root=fashion_mnist_root, download=False)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels), [1000] * 10)


@pytest.mark.parametrize("download", [False, True])
def test_fallback_to_bundled_test_set_says_so_in_one_line(download):
    lines = []
    images, labels = data.load_mnist_or_bundled(download=download, log=lines.append, timeout=0.5)
    assert images.shape == (10000, 28, 28) and labels[0] == 7
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "bundled" in lines[0] and str(BUNDLED) in lines[0]
    assert ("could not download" in lines[0]) == download


def test_no_fallback_when_the_train_split_is_there(tmp_path):
    write_split(tmp_path / "root", TRAIN_FILES, 7)
    lines = []
    images, _ = data.load_mnist_or_bundled(root=tmp_path / "root", log=lines.append)
    assert len(images) == 7 and lines == []


def test_missing_bundled_folder_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "__file__", str(tmp_path / "site-packages" / "tinygan" / "data.py"))
    with pytest.raises(DatasetError, match="pip install -e"):
        data.load_mnist_or_bundled(download=False)


# --------------------------------------------------------------------------- image folders
def make_image_folder(folder: Path) -> None:
    """Six readable images of various kinds, one garbage .jpg and one text file."""
    (folder / "nested" / "deeper").mkdir(parents=True)
    wide = np.zeros((30, 90, 3), np.uint8)  # red | green | red: the centre crop is green
    wide[:, :30, 0] = wide[:, 60:, 0] = 255
    wide[:, 30:60, 1] = 255
    Image.fromarray(wide).save(folder / "a_wide.png")
    tall = np.zeros((90, 30, 3), np.uint8)
    tall[30:60, :, 2] = 255  # the centre of a tall image is blue
    Image.fromarray(tall).save(folder / "b_tall.PNG")
    Image.new("L", (40, 40), 200).save(folder / "c_grey.png")
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(folder / "d_transparent.png")
    Image.new("RGB", (50, 70), (10, 120, 250)).save(folder / "nested" / "e_photo.jpg", quality=95)
    Image.new("RGB", (16, 16), (255, 255, 0)).save(folder / "nested" / "deeper" / "f.webp")
    (folder / "nested" / "g_broken.jpg").write_bytes(b"this is not a JPEG" * 10)
    (folder / "notes.txt").write_text("not an image")


def test_load_image_folder_crops_resizes_and_counts_unreadable_files(tmp_path):
    make_image_folder(tmp_path / "imgs")
    result = data.load_image_folder(tmp_path / "imgs", size=16, cache=False)
    assert result.images.shape == (6, 3, 16, 16) and result.images.dtype == np.uint8
    assert result.skipped == 1 and result.cache_path is None
    wide, tall, grey, transparent, webp, photo = result.images.astype(int)  # sorted paths
    np.testing.assert_array_equal(wide[:, 4:12, 4:12].reshape(3, -1).mean(1), [0, 255, 0])
    np.testing.assert_array_equal(tall[:, 4:12, 4:12].reshape(3, -1).mean(1), [0, 0, 255])
    assert (grey == 200).all() and (transparent == 255).all()
    assert np.abs(photo[:, 8, 8] - [10, 120, 250]).max() <= 3
    assert (webp[:2] >= 250).all() and (webp[2] <= 5).all()


def test_empty_or_unreadable_folders_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image files") as info:
        data.load_image_folder(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(info.value)
    (tmp_path / "empty" / "notes.txt").write_text("no picture")
    with pytest.raises(DatasetError, match="notes.txt: not an image file"):
        data.load_image_folder(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="none of its 1 image files could be read"):
        data.load_image_folder(tmp_path / "junk", cache=False)
    with pytest.raises(DatasetError, match="not a folder"):
        data.load_image_folder(tmp_path / "missing")


def test_image_folder_cache_hit_and_invalidation(monkeypatch, tmp_path):
    make_image_folder(tmp_path / "imgs")
    first = data.load_image_folder(tmp_path / "imgs", size=8)
    cache_dir = tmp_path / "xdg-cache" / "tinygan" / "image-folders"
    assert first.cache_path.parent == cache_dir and first.cache_path.is_file()
    assert "imgs" in first.cache_path.name and "8px" in first.cache_path.name

    def no_open(*args, **kwargs):
        raise AssertionError("a cache hit must not open images")

    with monkeypatch.context() as patch:
        patch.setattr(Image, "open", no_open)
        second = data.load_image_folder(tmp_path / "imgs", size=8)
    np.testing.assert_array_equal(second.images, first.images)
    assert second.skipped == 1 and second.cache_path == first.cache_path

    Image.new("RGB", (8, 8), "white").save(tmp_path / "imgs" / "z_new.png")
    third = data.load_image_folder(tmp_path / "imgs", size=8)
    assert len(third.images) == 7 and third.cache_path != first.cache_path
    assert sorted(p.name for p in cache_dir.iterdir()) == [third.cache_path.name]


def test_image_folder_progress_and_cache_dir(tmp_path):
    make_image_folder(tmp_path / "imgs")
    calls = []
    result = data.load_image_folder(
        tmp_path / "imgs",
        size=8,
        cache_dir=tmp_path / "mycache",
        progress=lambda done, total: calls.append((done, total)),
        workers=1,
    )
    assert result.cache_path.parent == tmp_path / "mycache"
    assert calls[-1] == (7, 7) and calls == sorted(calls)


# --------------------------------------------------------------------------- pixel modes
def uniform(mode: str, value, side: int = 8, **info) -> Image.Image:
    """A ``side`` x ``side`` picture of one value in ``mode``, with ``info`` set."""
    dtypes = {"I;16": np.uint16, "I": np.int32, "F": np.float32}
    if mode in dtypes:
        image = Image.fromarray(np.full((side, side), value, dtypes[mode]))
    elif mode == "I;16B":
        image = Image.frombytes(mode, (side, side), np.full(side * side, value, ">u2").tobytes())
    else:
        image = Image.new(mode, (side, side), value)
    if mode in ("P", "PA"):
        image.putpalette([255, 0, 0, 0, 0, 255])  # 0: red, 1: blue
    image.info.update(info)
    return image


GREY_128 = (128, 128, 128)
WHITE = (255, 255, 255)
MODE_CASES = {  # file name: (picture, save options, expected RGB)
    "i16_half.png": (uniform("I;16", 32768), {}, GREY_128),  # Pillow's own: white
    "i16_exact.png": (uniform("I;16", 128 * 257), {}, GREY_128),
    "i16_dark.png": (uniform("I;16", 1000), {}, (4, 4, 4)),  # 3.89
    "i16_full.png": (uniform("I;16", 65535), {}, WHITE),
    "i16_transparent.png": (uniform("I;16", 0), {"transparency": 0}, WHITE),
    "i16b.tif": (uniform("I;16B", 32768), {}, GREY_128),
    "i32.tif": (uniform("I", 32896), {}, GREY_128),
    "float_unit.tif": (uniform("F", 0.5), {}, GREY_128),  # 127.5 rounds to 128
    "float_bytes.tif": (uniform("F", 200.0), {}, (200, 200, 200)),
    "one_bit.png": (uniform("1", 1), {}, WHITE),
    "grey_transparent.png": (uniform("L", 0), {"transparency": 0}, WHITE),
    "rgb_transparent.png": (uniform("RGB", (1, 2, 3)), {"transparency": (1, 2, 3)}, WHITE),
    "rgb_other_colour.png": (uniform("RGB", (9, 2, 3)), {"transparency": (1, 2, 3)}, (9, 2, 3)),
    "palette.png": (uniform("P", 1), {}, (0, 0, 255)),
    "palette_transparent.png": (uniform("P", 0), {"transparency": 0}, WHITE),
    "grey_alpha.png": (uniform("LA", (0, 0)), {}, WHITE),
    "grey_half_alpha.png": (uniform("LA", (0, 128)), {}, (127, 127, 127)),
    "palette_alpha.tif": (uniform("PA", (0, 0)), {}, WHITE),
    "cmyk.tif": (uniform("CMYK", (0, 255, 255, 0)), {}, (255, 0, 0)),
}


@pytest.mark.parametrize("name", MODE_CASES)
def test_every_pillow_mode_becomes_the_right_rgb(tmp_path, name):
    picture, options, expected = MODE_CASES[name]
    (tmp_path / "imgs").mkdir()
    picture.save(tmp_path / "imgs" / name, **options)
    result = data.load_image_folder(tmp_path / "imgs", size=8, cache=False)
    assert result.images.shape == (1, 3, 8, 8)
    np.testing.assert_array_equal(result.images[0].reshape(3, -1).T, [expected] * 64)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    (tmp_path / "imgs").mkdir()
    uniform("CMYK", (0, 255, 255, 0)).save(tmp_path / "imgs" / "cmyk.jpg", quality=95)
    images = data.load_image_folder(tmp_path / "imgs", size=8, cache=False).images
    assert np.abs(images[0].reshape(3, -1).T.astype(int) - [255, 0, 0]).max() <= 3


@pytest.mark.parametrize(
    "picture, expected",
    [
        (uniform("RGBa", (0, 0, 0, 0)), WHITE),  # premultiplied, fully transparent
        (uniform("RGBa", (50, 100, 150, 255)), (50, 100, 150)),
        (uniform("La", (0, 0)), WHITE),  # Pillow converts La only to LA
        (uniform("La", (90, 255)), (90, 90, 90)),
    ],
)
def test_premultiplied_alpha_composites_over_white(picture, expected):
    """RGBa and La exist only in memory (no file format stores them)."""
    from tinygan.utils.image_folder import _to_rgb

    rgb = _to_rgb(picture)
    assert rgb.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(rgb).reshape(-1, 3), [expected] * 64)


@pytest.mark.parametrize(
    "picture, message",
    [
        (uniform("I", 70000), r"I pixels span 70000\.\.70000, outside the 16-bit range"),
        (uniform("I", -1), r"I pixels span -1\.\.-1, outside the 16-bit range"),
        (uniform("F", 300.0), r"float pixels span 300\.\.300, neither 0\.\.1 nor 0\.\.255"),
        (uniform("F", -0.5), r"float pixels span -0\.5\.\.-0\.5"),
        (uniform("F", float("nan")), "NaN or infinite"),
    ],
)
def test_pixels_of_unknown_range_are_unreadable_not_guessed(tmp_path, picture, message):
    (tmp_path / "imgs").mkdir()
    picture.save(tmp_path / "imgs" / "odd.tif")
    uniform("L", 7).save(tmp_path / "imgs" / "plain.png")
    result = data.load_image_folder(tmp_path / "imgs", size=8, cache=False)
    assert len(result.images) == 1 and (result.images == 7).all()
    assert result.skipped == 1 and result.unreadable_paths == [tmp_path / "imgs" / "odd.tif"]
    assert re.search(message, result.unreadable[0].reason)


def test_nan_pixels_of_a_float_picture_are_counted_and_the_first_named(tmp_path):
    (tmp_path / "imgs").mkdir()
    pixels = np.full((8, 8), 0.5, np.float32)
    pixels[2, 5] = pixels[6, 1] = np.nan
    pixels[7, 7] = np.inf
    Image.fromarray(pixels).save(tmp_path / "imgs" / "odd.tif")
    uniform("L", 7).save(tmp_path / "imgs" / "plain.png")
    result = data.load_image_folder(tmp_path / "imgs", size=8, cache=False)
    assert len(result.images) == 1 and result.unreadable_paths == [tmp_path / "imgs" / "odd.tif"]
    reason = result.unreadable[0].reason
    assert reason == "3 float pixels that are NaN or infinite, the first at row 2, column 5"


# --------------------------------------------------------------------------- run folders
def make_run_folder(folder: Path) -> None:
    """A folder as a finished run leaves it: its settings, checkpoint and picture outputs."""
    (folder / "samples").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "checkpoint.npz").write_bytes(b"PK")
    for name in ("losses.png", "progress.gif", "samples/step_000001.png"):
        uniform("RGB", (9, 9, 9)).save(folder / name)


def test_image_folder_never_reads_a_run_folder_below_the_root(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(3):
        uniform("RGB", (i, 0, 0)).save(root / f"{i}.png")
    make_run_folder(root / "runs" / "old")  # a finished run: config.json and checkpoint
    killed = root / "runs" / "killed"  # killed before its first checkpoint: grids only
    (killed / "samples").mkdir(parents=True)
    (killed / "config.json").write_text("{}")
    uniform("RGB", (8, 8, 8)).save(killed / "samples" / "step_000001.png")
    (root / "this_run" / "samples").mkdir(parents=True)  # this run, before its checkpoint
    uniform("RGB", (9, 9, 9)).save(root / "this_run" / "samples" / "step_000001.png")
    (root / "notes").mkdir()  # a folder with only one of the two files is no run
    (root / "notes" / "config.json").write_text("{}")
    uniform("RGB", (3, 0, 0)).save(root / "notes" / "3.png")

    result = data.load_image_folder(root, size=4, exclude=[tmp_path / "photos" / "this_run"])
    assert result.images[:, 0, 0, 0].tolist() == [0, 1, 2, 3]
    assert [item.path for item in result.run_folders] == [
        root / "runs/killed",
        root / "runs/old",
        root / "this_run",
    ]
    _, old, this = (item.reason for item in result.run_folders)
    assert old.startswith("it holds a training run (config.json with a checkpoint")
    assert this.startswith("this run's output folder")
    assert "never read as training images" in old and "never read as training images" in this
    assert result.ignored_paths == [root / "notes" / "config.json"] and not result.unreadable
    again = data.load_image_folder(root, size=4, exclude=[root / "this_run"])  # the cache
    assert again.cache_path == result.cache_path and again.run_folders == result.run_folders
    everything = data.load_image_folder(root, size=4, cache=False)
    assert len(everything.images) == 5  # this run's grid too, when nothing names its folder


def test_image_folder_refuses_a_root_that_is_a_run_or_inside_one(tmp_path):
    make_run_folder(tmp_path / "run")
    with pytest.raises(DatasetError, match="it holds a training run"):
        data.load_image_folder(tmp_path / "run", size=4)
    with pytest.raises(DatasetError, match="lies in this run's output folder"):
        data.load_image_folder(tmp_path / "run" / "samples", size=4, exclude=[tmp_path / "run"])


def test_a_file_name_that_is_not_utf8_is_loaded_and_cached(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: no UTF-8 text
    try:
        uniform("RGB", (1, 2, 3)).save(root / name)
    except (OSError, UnicodeEncodeError) as e:
        pytest.skip(f"this file system refuses names that are not UTF-8: {e}")
    (root / os.fsdecode(b"bad\xff.jpg")).write_bytes(b"not a JPEG")
    first = data.load_image_folder(root, size=4, cache_dir=tmp_path / "cache")
    assert (first.images[0, :, 0, 0] == [1, 2, 3]).all() and first.cache_path.is_file()
    again = data.load_image_folder(root, size=4, cache_dir=tmp_path / "cache")  # a cache hit
    assert again.cache_path == first.cache_path and again.unreadable == first.unreadable
    assert os.fsencode(again.unreadable[0].path.name) == b"bad\xff.jpg"


# --------------------------------------------------------------------------- files left out
def symlink(link: Path, target: Path | str) -> None:
    """``link`` -> ``target``, or skip the test where the platform cannot make links."""
    try:
        link.symlink_to(target)
    except (OSError, NotImplementedError) as e:
        pytest.skip(f"no symbolic links here: {e}")


def test_symlinked_folders_are_followed_once_and_loops_end(tmp_path):
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    uniform("L", 10).save(root / "a.png")
    uniform("L", 20).save(root / "sub" / "b.png")
    uniform("L", 30).save(tmp_path / "elsewhere" / "c.png")
    symlink(root / "linked", tmp_path / "elsewhere")  # a folder outside: followed
    symlink(root / "sub" / "up", "..")  # an ancestor: a loop
    symlink(root / "again", root / "sub")  # a second way into sub
    symlink(root / "b-elsewhere", "linked")  # a link to a link: sorts first, so it is followed
    symlink(root / "d_dangling.png", root / "nowhere.png")
    symlink(root / "d_dangling.txt", root / "nowhere.txt")
    symlink(root / "e_self.png", root / "e_self.png")  # a link to itself: ELOOP
    result = data.load_image_folder(root, size=8, cache=False)
    assert result.images[:, 0, 0, 0].tolist() == [10, 30, 20]  # a, b-elsewhere/c, sub/b
    assert result.ignored_paths == [
        root / "again",
        root / "d_dangling.txt",
        root / "linked",
        root / "sub" / "up",
    ]
    assert result.ignored[0].reason == f"a second way into {root / 'sub'}, which is scanned once"
    assert result.ignored[1].reason == f"a broken link (to {root / 'nowhere.txt'})"
    assert result.ignored[3].reason == f"a second way into {root}, which is scanned once"
    assert result.unreadable_paths == [root / "d_dangling.png", root / "e_self.png"]
    assert result.skipped == 2


def animated(path: Path, **options) -> None:
    frames = [uniform("RGB", colour) for colour in ("red", "blue")]
    frames[0].save(path, save_all=True, append_images=frames[1:], **options)


def test_every_file_left_out_is_counted_listed_and_cached(monkeypatch, tmp_path):
    root = tmp_path / "imgs"
    make_image_folder(root)  # six readable images, nested/g_broken.jpg, notes.txt
    animated(root / "h_animated.png")
    animated(root / "h_animated.gif")
    animated(root / "h_pages.tif")
    animated(root / "h_animated.webp")
    (root / "nested" / "i_cut.png").write_bytes((root / "a_wide.png").read_bytes()[:100])
    first = data.load_image_folder(root, size=8)
    assert len(first.images) == 6 and first.cache_warning is None
    assert first.ignored_paths == [
        root / name
        for name in ("h_animated.gif", "h_animated.png", "h_animated.webp", "h_pages.tif")
    ] + [root / "notes.txt"]
    reasons = [item.reason for item in first.ignored]
    assert reasons == ["2 frames (an animation or several pages)"] * 4 + ["not an image file"]
    assert first.unreadable_paths == [
        root / "nested" / "g_broken.jpg",
        root / "nested" / "i_cut.png",
    ]
    assert first.skipped == 2
    assert first.unreadable[0].reason == "Pillow does not recognise it as an image"
    assert "truncated" in first.unreadable[1].reason

    def no_open(*args, **kwargs):
        raise AssertionError("a cache hit must not open images")

    with monkeypatch.context() as patch:
        patch.setattr(Image, "open", no_open)
        again = data.load_image_folder(root, size=8)
    assert (again.ignored, again.unreadable) == (first.ignored, first.unreadable)
    np.testing.assert_array_equal(again.images, first.images)
    assert again.cache_path == first.cache_path and again.cache_warning is None


# --------------------------------------------------------------------------- the cache
def test_cache_follows_content_not_size_and_time(tmp_path):
    """An edit that keeps the byte size and modification time (a BMP's size depends only
    on its dimensions) still makes a new cache."""
    (tmp_path / "imgs").mkdir()
    path = tmp_path / "imgs" / "a.bmp"
    uniform("RGB", (10, 20, 30)).save(path)
    uniform("RGB", (40, 50, 60)).save(tmp_path / "imgs" / "b.bmp")
    first = data.load_image_folder(tmp_path / "imgs", size=8)
    stat = path.stat()
    uniform("RGB", (200, 100, 0)).save(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    second = data.load_image_folder(tmp_path / "imgs", size=8)
    assert second.images[0, :, 0, 0].tolist() == [200, 100, 0]
    assert second.cache_path != first.cache_path and not first.cache_path.exists()


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def wrong_shape(path: Path) -> None:
    with path.open("wb") as f:
        np.savez(f, images=np.zeros((6, 3, 4, 4), np.uint8), left_out=np.zeros((0, 3), str))


def wrong_count(path: Path) -> None:
    with path.open("wb") as f:
        np.savez(f, images=np.zeros((5, 3, 8, 8), np.uint8), left_out=np.zeros((0, 3), str))


def single_array(path: Path) -> None:
    with path.open("wb") as f:
        np.save(f, np.zeros((6, 3, 8, 8), np.float32))


def unknown_file_left_out(path: Path) -> None:
    with path.open("wb") as f:
        left_out = np.array([["unreadable", "no/such/file.jpg", "?"]])
        np.savez(f, images=np.zeros((6, 3, 8, 8), np.uint8), left_out=left_out)


def garbage(path: Path) -> None:
    path.write_bytes(b"garbage" * 100)


def empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    "damage",
    [
        truncate,
        garbage,
        empty,
        wrong_shape,
        wrong_count,
        single_array,
        unknown_file_left_out,
    ],
)
def test_damaged_cache_is_rebuilt(monkeypatch, tmp_path, damage):
    make_image_folder(tmp_path / "imgs")
    first = data.load_image_folder(tmp_path / "imgs", size=8)
    damage(first.cache_path)
    rebuilt = data.load_image_folder(tmp_path / "imgs", size=8)
    np.testing.assert_array_equal(rebuilt.images, first.images)
    assert rebuilt.cache_path == first.cache_path and rebuilt.skipped == 1
    assert rebuilt.cache_warning.startswith(f"the cache {first.cache_path} was damaged")
    with monkeypatch.context() as patch:  # the rebuilt cache is whole again
        patch.setattr(Image, "open", lambda *args: pytest.fail("the cache was not rebuilt"))
        third = data.load_image_folder(tmp_path / "imgs", size=8)
    np.testing.assert_array_equal(third.images, first.images)
    assert third.cache_warning is None


def full_disk(path):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@pytest.mark.parametrize("unwritable", ["cache_dir_is_a_file", "disk_full"])
def test_unwritable_cache_still_returns_the_images(monkeypatch, tmp_path, unwritable):
    make_image_folder(tmp_path / "imgs")
    expected = data.load_image_folder(tmp_path / "imgs", size=8, cache=False)
    cache_dir = tmp_path / "cache"
    if unwritable == "cache_dir_is_a_file":  # root ignores permissions: a file is sure to fail
        cache_dir.write_bytes(b"")
    else:
        monkeypatch.setattr(image_folder, "atomic_write", full_disk)
    result = data.load_image_folder(tmp_path / "imgs", size=8, cache_dir=cache_dir)
    np.testing.assert_array_equal(result.images, expected.images)
    assert result.cache_path is None and result.skipped == 1
    assert "could not be written" in result.cache_warning
    assert str(cache_dir) in result.cache_warning
    if unwritable == "disk_full":
        assert os.strerror(errno.ENOSPC) in result.cache_warning
        assert list(cache_dir.iterdir()) == []


# --------------------------------------------------------------------------- batches
def indexed_images(n: int) -> np.ndarray:
    """uint8 (n, 2, 2) images; image i is filled with the value i (n <= 256)."""
    return np.repeat(np.arange(n, dtype=np.uint8), 4).reshape(n, 2, 2)


def batch_indices(batch: np.ndarray) -> list[int]:
    return np.rint((batch[:, 0, 0, 0] + 1) * 127.5).astype(int).tolist()


def test_images_to_float_maps_bytes_to_minus_one_one():
    x = np.arange(256, dtype=np.uint8)
    y = data.images_to_float(x)
    assert y.dtype == np.float32 and y[0] == -1.0 and y[255] == 1.0
    np.testing.assert_array_equal(y, x.astype(np.float32) / np.float32(127.5) - np.float32(1))
    with pytest.raises(TypeError, match="uint8"):
        data.images_to_float(y)


def test_epoch_batches_shapes_dtype_range():
    images = read_idx(BUNDLED / TEST_FILES[0])[:1000]
    batches = list(data.BatchLoader(images, 64, seed=0).epoch(0))
    assert len(batches) == 1000 // 64
    for b in batches:
        assert b.shape == (64, 1, 28, 28) and b.dtype == np.float32
        assert b.min() >= -1 and b.max() <= 1
    assert min(b.min() for b in batches) == -1 and max(b.max() for b in batches) == 1
    last = list(data.BatchLoader(images, 64, drop_last=False).epoch(0))[-1]
    assert last.shape == (1000 % 64, 1, 28, 28)


def test_rgb_and_float_images_pass_through():
    rgb = np.zeros((10, 3, 4, 4), np.uint8)
    assert next(data.BatchLoader(rgb, 5).epoch(0)).shape == (5, 3, 4, 4)
    floats = np.linspace(-1, 1, 10 * 16).reshape(10, 1, 4, 4)  # float64, already in [-1, 1]
    batch = next(data.BatchLoader(floats, 10, shuffle=False).epoch(0))
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch, floats, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_batch_loader_refuses_nan_and_infinite_pixels_naming_the_count_and_the_first(dtype):
    images = np.zeros((6, 3, 4, 4), dtype)
    images[4, 2, 1, 3] = np.nan
    images[5, 0, 0, 0] = np.inf
    images[5, 1, 0, 0] = -np.inf
    with pytest.raises(DatasetError) as info:
        data.BatchLoader(images, 2)
    message = str(info.value)
    assert "3 of the 288 pixels" in message and "NaN or infinite" in message
    assert "image 4 (channel 2, row 1, column 3)" in message and "data is broken" in message
    grey = np.zeros((3, 4, 4), dtype)
    grey[1, 2, 3] = -np.inf
    with pytest.raises(DatasetError, match=r"1 of the 48 pixels .* image 1 \(row 2, column 3\)"):
        data.BatchLoader(grey, 1)


def test_batch_loader_accepts_finite_pixels_whose_sum_overflows():
    huge = np.full((4, 2, 2), np.finfo(np.float64).max)  # finite, but no float64 sum holds them
    assert data.BatchLoader(huge, 2).images.shape == (4, 1, 2, 2)


def test_shuffling_is_seeded():
    images = indexed_images(100)
    order = [batch_indices(b) for b in data.BatchLoader(images, 10, seed=1).epoch(0)]
    again = [batch_indices(b) for b in data.BatchLoader(images, 10, seed=1).epoch(0)]
    other = [batch_indices(b) for b in data.BatchLoader(images, 10, seed=2).epoch(0)]
    plain = [batch_indices(b) for b in data.BatchLoader(images, 10, shuffle=False).epoch(0)]
    assert order == again and order != other
    assert sorted(sum(order, [])) == list(range(100))  # an epoch visits each image once
    assert sum(plain, []) == list(range(100))


def test_batch_loader_epochs_differ_and_resume_is_exact():
    loader = data.BatchLoader(indexed_images(50), batch_size=8, seed=3)
    assert len(loader) == loader.steps_per_epoch == 6
    stream = loader.batches()
    uninterrupted = [batch_indices(next(stream)) for _ in range(20)]  # 3+ epochs
    assert uninterrupted[:6] != uninterrupted[6:12]
    resumed_loader = data.BatchLoader(indexed_images(50), batch_size=8, seed=3)
    resumed = resumed_loader.batches(start_step=13)
    assert [batch_indices(next(resumed)) for _ in range(7)] == uninterrupted[13:]
    assert batch_indices(loader.batch(7)) == uninterrupted[7]
    assert [batch_indices(b) for b in loader.epoch(1)] == uninterrupted[6:12]


def test_batch_loader_rejects_bad_input():
    with pytest.raises(ValueError, match="batch_size 8 is more than the 5 images") as info:
        data.BatchLoader(indexed_images(5), batch_size=8)
    assert "at most 5" in str(info.value) and "drop_last" not in str(info.value)
    with pytest.raises(ValueError, match="nothing to make batches of"):
        data.BatchLoader(indexed_images(0), batch_size=1)
    with pytest.raises(ValueError, match=r"\(N, H, W\) or \(N, C, H, W\)"):
        data.BatchLoader(np.zeros((5, 4), np.uint8), batch_size=2)
    with pytest.raises(TypeError, match="uint8 or floating"):
        data.BatchLoader(np.zeros((5, 2, 2), np.int64), batch_size=2)
    with pytest.raises(ValueError, match="non-negative"):
        data.BatchLoader(indexed_images(5), batch_size=2).batch(-1)
