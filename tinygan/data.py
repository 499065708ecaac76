"""Training data: MNIST and Fashion-MNIST, folders of images, reproducible mini-batches.

The file formats, downloads and image decoding live in :mod:`tinygan.utils` (``idx``,
``download``, ``image_folder``); this module says where the data comes from and how it is
batched.

**Storage.** Every loader here returns images as ``uint8`` arrays, and only the batches
are converted to ``float32`` in [-1, 1] (the range of a generator ending in ``tanh``)::

    MNIST, Fashion-MNIST   uint8 (N, 28, 28)          labels uint8 (N,)
    image folders          uint8 (N, 3, size, size)   RGB, centre-cropped, resized
    batches                float32 (B, C, H, W)       x / 127.5 - 1

uint8 is four times smaller than float32: CelebA at 64x64 is 10 GB as float32 but
2.5 GB as uint8, and converting one batch costs microseconds.

**Where MNIST comes from.** ``load_mnist(split, root)`` looks for the split's two IDX
files (``train-images-idx3-ubyte.gz`` and ``train-labels-idx1-ubyte.gz``, or the same
names without ``.gz``). A ``root`` given by the caller is the only folder looked at: it
must exist (it is never created), and the files missing there are downloaded into it or
named in the error, never taken from elsewhere. Without ``root``, these folders are
searched, first match wins:

1. ``$TINYGAN_DATA/mnist`` (``$TINYGAN_DATA/fashion-mnist`` for Fashion-MNIST);
2. the per-user cache ``$XDG_CACHE_HOME/tinygan/mnist``, by default ``~/.cache/tinygan/mnist``;
3. for Fashion-MNIST only, ``/usr/share/datasets/fashion-mnist`` (Debian's
   ``dataset-fashion-mnist`` package).

When no folder has them and ``download=True``, they are downloaded into the first folder
of that list (created if needed) from the dataset's public mirrors, checked against the
published MD5 and written atomically. The repository ships the 10,000-image MNIST *test*
set in ``datasets/mnist``; without ``root``, :func:`load_mnist_or_bundled` falls back to it
when the 60,000-image training set can be neither found nor downloaded. (Reading
``TINYGAN_DATA`` and ``XDG_CACHE_HOME`` here is the one place where tinygan looks at the
environment: data locations are a per-machine setting, like ``TORCH_HOME``.)

**Batches.** :class:`BatchLoader` gives reproducible shuffled batches whose order is a pure
function of ``(seed, step)``, so a resumed run sees exactly the batches of an
uninterrupted one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinygan.utils.download import DownloadError, download, user_cache_dir
from tinygan.utils.idx import DatasetError, PathLike, read_idx
from tinygan.utils.image_folder import ImageFolderData, load_image_folder

__all__ = [
    "FASHION_MNIST", "MNIST", "BatchLoader", "DatasetError", "DownloadError", "IdxDataset",
    "ImageFolderData", "bundled_dataset_dir", "dataset_search_dirs", "images_to_float",
    "load_fashion_mnist", "load_image_folder", "load_mnist", "load_mnist_or_bundled",
    "load_training_images", "TRAINING_SETS",
    "read_idx",
]  # fmt: skip


# --------------------------------------------------------------------------- data folders
def bundled_dataset_dir(name: str = "mnist") -> Path:
    """The folder of a data set shipped in the repository's ``datasets/`` (beside ``tinygan/``).

    Raises:
        DatasetError: tinygan runs from an install without the repository's ``datasets/``.
    """
    folder = Path(__file__).resolve().parent.parent / "datasets" / name
    if not folder.is_dir():
        raise DatasetError(
            f"the bundled data folder {folder} is missing: it ships in the repository's "
            "datasets/ folder next to tinygan/, so install tinygan from a checkout with "
            "`pip install -e .`, or put the data in a folder and pass root= or set TINYGAN_DATA"
        )
    return folder


@dataclass(frozen=True)
class IdxDataset:
    """Where an MNIST-like data set (four IDX files) comes from.

    Attributes:
        name: folder name under ``$TINYGAN_DATA`` and the cache (``"mnist"``).
        title: name for messages (``"MNIST"``).
        mirrors: base URLs, each holding all four ``.gz`` files, tried in order.
        md5: the MD5 of each ``.gz`` file as published upstream.
        system_dirs: read-only folders searched last (a Linux package's install folder).
    """

    name: str
    title: str
    mirrors: tuple[str, ...]
    md5: Mapping[str, str]
    system_dirs: tuple[Path, ...] = ()


MNIST = IdxDataset(
    name="mnist",
    title="MNIST",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)

FASHION_MNIST = IdxDataset(
    name="fashion-mnist",
    title="Fashion-MNIST",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
)

_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def dataset_search_dirs(dataset: IdxDataset, root: PathLike | None = None) -> list[Path]:
    """The folders searched for ``dataset``'s files, in order.

    ``[root]`` alone when ``root`` is given, else the default search (see the module
    docstring).
    """
    if root is not None:
        return [Path(root)]
    dirs = []
    if os.environ.get("TINYGAN_DATA"):
        dirs.append(Path(os.environ["TINYGAN_DATA"]) / dataset.name)
    dirs.append(user_cache_dir() / dataset.name)
    return dirs + list(dataset.system_dirs)


def _find_file(folder: Path, name: str) -> Path | None:
    """``folder/name``, or the uncompressed ``folder/name`` without ``.gz``, if present."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _read_split(
    dataset: IdxDataset, images_path: Path, labels_path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Read and cross-check one split's image and label files."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if (
        images.dtype != np.uint8
        or images.ndim != 3
        or images.shape[1:] != (28, 28)
        or not len(images)
    ):
        raise DatasetError(
            f"{images_path}: expected {dataset.title} images, uint8 (N, 28, 28) with N > 0, "
            f"got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1] or labels.max() > 9:
        raise DatasetError(
            f"{labels_path}: expected {len(images)} {dataset.title} labels, uint8 in 0..9, "
            f"got {labels.dtype} {labels.shape} (max {labels.max()})"
        )
    return images, labels


def _load_idx_dataset(
    dataset: IdxDataset, split: str, root: PathLike | None, allow_download: bool, timeout: float
) -> tuple[np.ndarray, np.ndarray]:
    if split not in _SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if root is not None and not Path(root).is_dir():
        raise DatasetError(
            f"the {dataset.title} folder given as root, {root}, "
            f"{'is not a folder' if Path(root).exists() else 'does not exist'}: "
            "give the folder that holds the IDX files, or create it to download them there"
        )
    names = _SPLIT_FILES[split]
    dirs = dataset_search_dirs(dataset, root)
    for folder in dirs:
        found = [_find_file(folder, name) for name in names]
        if all(found):
            return _read_split(dataset, *found)
    if root is not None:
        missing = " and ".join(name for name in names if _find_file(dirs[0], name) is None)
        not_found = f"{dataset.title} {split} split not found: the root {root} lacks {missing}"
    else:
        not_found = (
            f"{dataset.title} {split} split not found: no folder of "
            f"{', '.join(map(str, dirs))} holds both {names[0]} and {names[1]}"
        )
    if not allow_download:
        raise DatasetError(f"{not_found} (with or without .gz), and download=False")
    target = dirs[0]
    try:
        paths = [
            _find_file(target, name)
            or download(
                [m + name for m in dataset.mirrors], target / name, dataset.md5[name], timeout
            )
            for name in names
        ]
    except DownloadError as e:
        raise DownloadError(f"{not_found}, and {e}") from e
    return _read_split(dataset, *paths)


def load_mnist(
    split: str = "train",
    root: PathLike | None = None,
    download: bool = True,
    timeout: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST handwritten digits: 60,000 training or 10,000 test images.

    Args:
        split: ``"train"`` or ``"test"``.
        root: the folder holding the IDX files, the only one looked at when given; it
            must exist. None searches the default folders (see the module docstring).
        download: fetch missing files from the mirrors (MD5-checked) into ``root``, or
            without it into the first default folder.
        timeout: seconds a mirror may stay silent before the next one is tried.

    Returns:
        ``(images, labels)``: uint8 ``(N, 28, 28)`` with 0 = black background and 255 =
        ink, and uint8 ``(N,)`` digits 0..9.

    Raises:
        DatasetError: ``root`` is not a folder, or the files are missing (and cannot be
            downloaded) or corrupt; the message names the folder and the files.
    """
    return _load_idx_dataset(MNIST, split, root, download, timeout)


def load_fashion_mnist(
    split: str = "train",
    root: PathLike | None = None,
    download: bool = True,
    timeout: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Zalando's Fashion-MNIST: 28x28 grey clothing images in 10 classes, MNIST's layout.

    Labels: 0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt,
    7 sneaker, 8 bag, 9 ankle boot. Arguments, returns and errors as :func:`load_mnist`;
    ``/usr/share/datasets/fashion-mnist`` is searched too.
    """
    return _load_idx_dataset(FASHION_MNIST, split, root, download, timeout)


def load_mnist_or_bundled(
    root: PathLike | None = None,
    download: bool = True,
    log: Callable[[str], None] | None = None,
    timeout: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST for training: the 60,000-image train split, else the bundled 10,000 test images.

    The train split is looked for and downloaded as :func:`load_mnist` does. If that fails
    in the default folders (no internet, ``download=False``, a corrupt file), the test set
    shipped in the repository's ``datasets/mnist`` is returned instead, and one line saying
    so and why goes to ``log``: the demos pass ``print``; the library itself never prints.
    A ``root`` given by the caller gets no fallback: the train split must be there (or
    downloadable into it), else the error says what is missing there.

    Args:
        root: the folder holding the IDX files, the only one looked at when given.
        download: try the mirrors when the train split is not on disk.
        log: called with one line when falling back to the bundled set.
        timeout: seconds a mirror may stay silent before the next one is tried.

    Returns:
        ``(images, labels)`` as :func:`load_mnist`.

    Raises:
        DatasetError: ``root`` is given and lacks the train split (or is not a folder), or
            the train split is unavailable and so is the bundled folder.
    """
    try:
        return load_mnist("train", root=root, download=download, timeout=timeout)
    except DatasetError as e:
        if root is not None:  # the caller named the folder: nothing stands in for it
            raise
        folder = bundled_dataset_dir("mnist")
        images, labels = _read_split(MNIST, *(folder / name for name in _SPLIT_FILES["test"]))
        if log is not None:
            log(f"MNIST: using the {len(images):,} bundled test images in {folder}, because {e}")
        return images, labels


# --------------------------------------------------------------------------- image folders


TRAINING_SETS = ("mnist", "fashion-mnist")


def load_training_images(
    dataset: str,
    root: PathLike | None = None,
    download: bool = True,
    log: Callable[[str], None] | None = None,
) -> np.ndarray:
    """The training images of ``dataset``, uint8 (N, 28, 28), for the MNIST demos.

    Args:
        dataset: "mnist" (:func:`load_mnist_or_bundled`: without ``root``, the bundled test
            set when the training set is unavailable, said through ``log``) or
            "fashion-mnist".
        root: the folder holding the IDX files, the only one looked at when given (it must
            exist, and no fallback replaces it).
        download: fetch missing files from the mirrors.
        log: receives the one line saying that MNIST fell back to the bundled images.
    """
    if dataset == "mnist":
        images, _ = load_mnist_or_bundled(root=root, download=download, log=log)
    elif dataset == "fashion-mnist":
        images, _ = load_fashion_mnist("train", root=root, download=download)
    else:
        raise ValueError(f"dataset must be one of {TRAINING_SETS}, got {dataset!r}")
    return images


# --------------------------------------------------------------------------- batches
def images_to_float(images: np.ndarray) -> np.ndarray:
    """uint8 pixels in [0, 255] to float32 in [-1, 1]: ``x / 127.5 - 1``, in float32.

    0 maps to exactly -1 and 255 to exactly 1, the range of a ``tanh`` generator.
    """
    if images.dtype != np.uint8:
        raise TypeError(f"images_to_float expects uint8 pixels, got {images.dtype}")
    return images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def _require_finite(images: np.ndarray) -> None:
    """Raise DatasetError, with their count and the first, if pixels are NaN or infinite.

    Such a pixel makes the losses NaN at once, and the run would seem to diverge. The
    check sums in float64, which needs no mask the size of the images and is finite
    exactly when every pixel is (float32 pixels cannot overflow a float64 sum); only when
    it is not (or huge float64 pixels overflow it) does a mask count the pixels.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow only asks for the mask
        if np.isfinite(np.sum(images, dtype=np.float64)):
            return
    bad = ~np.isfinite(images)
    count = int(np.count_nonzero(bad))
    if count:
        *where, row, column = (int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))
        channel = f"channel {where[1]}, " if len(where) > 1 else ""
        raise DatasetError(
            f"{count:,} of the {images.size:,} pixels of the images are NaN or infinite, the "
            f"first in image {where[0]} ({channel}row {row}, column {column}): the data is "
            "broken, not the training; repair or leave out those images"
        )


class BatchLoader:
    """Shuffled mini-batches, reproducible from a seed and resumable at any step.

    The loader sees an endless stream of batches. Step ``s`` is batch
    ``s % steps_per_epoch`` of epoch ``s // steps_per_epoch``, and epoch ``e`` visits the
    images in the order ``numpy.random.default_rng([seed, e]).permutation(N)``. Since a
    batch is a pure function of ``(seed, step)``, there is no random state to save in a
    checkpoint: a run stopped after ``k`` steps continues with ``loader.batches(k)`` and
    gets exactly the batches an uninterrupted run would have got::

        loader = BatchLoader(images, batch_size=64, seed=0)
        for step, real in zip(range(start, total_steps), loader.batches(start)):
            ...  # real: float32 (64, C, H, W) in [-1, 1]

    Args:
        images: uint8 ``(N, H, W)`` (one channel, as MNIST) or ``(N, C, H, W)``, converted
            per batch by :func:`images_to_float`; or floating point, taken to be in
            [-1, 1] already and cast to float32 (NaN and infinity are refused).
        batch_size: images per batch.
        seed: seed of the shuffling.
        shuffle: False visits the images in stored order in every epoch.
        drop_last: leave out each epoch's last, incomplete batch (so every batch has
            ``batch_size`` images, which BatchNorm statistics like).
        labels: one integer label per image (N,), for :meth:`batch_labels`, or None.

    Raises:
        ValueError: images of another shape, no images, or a ``batch_size`` below 1 or
            (with ``drop_last``) above the number of images.
        TypeError: pixels neither uint8 nor floating point.
        DatasetError: floating-point pixels that are NaN or infinite (the message gives
            their count and the first).
    """

    def __init__(
        self,
        images: np.ndarray,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        labels: np.ndarray | None = None,
    ) -> None:
        if images.ndim not in (3, 4):
            raise ValueError(f"images must be (N, H, W) or (N, C, H, W), got shape {images.shape}")
        if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
            raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if len(images) == 0:
            raise ValueError("images is empty: there is nothing to make batches of")
        if drop_last and len(images) < batch_size:
            raise ValueError(
                f"batch_size {batch_size} is more than the {len(images):,} images: every "
                f"batch holds {batch_size} different images, so use a batch size of at most "
                f"{len(images):,}"
            )
        if labels is not None and np.shape(labels) != images.shape[:1]:
            raise ValueError(f"labels must have shape ({len(images)},), got {np.shape(labels)}")
        if images.dtype != np.uint8:
            _require_finite(images)
        self.images = images[:, None] if images.ndim == 3 else images  # (N, C, H, W)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self._order_epoch = -1  # the epoch whose order is in self._order
        self._order = np.arange(len(images))

    @property
    def steps_per_epoch(self) -> int:
        """Batches in one pass over the images."""
        n, b = len(self.images), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The order in which epoch ``epoch`` visits the images (a permutation of 0..N-1)."""
        if not self.shuffle:
            return np.arange(len(self.images))
        if epoch != self._order_epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(len(self.images))
            self._order_epoch = epoch
        return self._order

    def indices(self, step: int) -> np.ndarray:
        """Which images batch ``step`` of the endless stream holds."""
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        epoch, index = divmod(step, self.steps_per_epoch)
        start = index * self.batch_size
        return self.epoch_order(epoch)[start : start + self.batch_size]

    def batch_labels(self, step: int) -> np.ndarray:
        """The labels of batch ``step``'s images, int64 ``(B,)``."""
        if self.labels is None:
            raise ValueError("this BatchLoader was made without labels")
        return self.labels[self.indices(step)]

    def batch(self, step: int) -> np.ndarray:
        """Batch ``step`` of the endless stream: float32 ``(B, C, H, W)`` in [-1, 1]."""
        chosen = self.images[self.indices(step)]
        if chosen.dtype == np.uint8:
            return images_to_float(chosen)
        return chosen.astype(np.float32, copy=False)

    def epoch(self, epoch: int) -> Iterator[np.ndarray]:
        """The batches of one epoch."""
        first = epoch * self.steps_per_epoch
        for step in range(first, first + self.steps_per_epoch):
            yield self.batch(step)

    def batches(self, start_step: int = 0) -> Iterator[np.ndarray]:
        """The endless stream of batches from step ``start_step`` on (epoch after epoch)."""
        step = start_step
        while True:
            yield self.batch(step)
            step += 1

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.batches()
