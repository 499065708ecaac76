"""Train the small MNIST classifier that tinygan.metrics scores generators with.

    python demos/train_mnist_classifier.py            # about 4 minutes on one CPU core
    python demos/train_mnist_classifier.py --replace-shipped-weights   # if it does better

The network is ``tinygan.models.lenet`` (two 5x5 convolutions with max pooling, a hidden
layer of 128 features, 10 logits), trained with tinygan itself on the MNIST images shipped
in the repository, the 10,000-image test set: images 0..7999 train it, images 8000..9999
are held out and only measure its accuracy. The quality metrics take their real
statistics from the training part only, so the held-out images stay unseen everywhere.

The loss is the cross-entropy of the softmax, written from primitives:

    L = -1/N sum_i log softmax(z_i)[y_i],   log softmax(z) = z - m - log sum_k exp(z_k - m)

with m = max_k z_k, a constant that keeps exp from overflowing (the result does not depend
on it, so it is detached). With 8,000 images the network overfits fast, so every batch is
shifted by up to ``--shift`` pixels at random; Adam's learning rate follows a cosine from
``--lr`` down to 0. Writes ``mnist_lenet.npz`` (a tinygan checkpoint with the entry
``model``) and ``mnist_lenet.json`` beside it (the data, the held-out accuracy, the
settings, the command and the wall time) to ``runs/mnist_classifier/``. Every quality score
depends on the shipped copy in ``tinygan/weights/``: ``--replace-shipped-weights`` copies
the new weights there, and only when they do at least as well on the same held-out images.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import tinygan as tg
from tinygan import data, models, optim, use_fast_paths
from tinygan.metrics import WEIGHTS_PATH
from tinygan.tensor import Tensor
from tinygan.utils.cli import parse_config, require_positive, require_range, run_main
from tinygan.utils.fileio import atomic_write, refuse_to_replace

BUNDLED_IMAGES = 10_000  # the bundled MNIST test set: train_count train, the rest are held out


@dataclass
class ClassifierConfig:
    """Train the LeNet-style MNIST classifier of tinygan.metrics on the bundled digits.

    Attributes:
        train_count: images 0..train_count-1 of the bundled set train; the rest are held out.
        epochs: passes over the training images.
        batch_size: images per Adam step.
        lr: Adam's first learning rate, decayed to 0 along a cosine.
        shift: largest random shift of a training image, in pixels (0: no augmentation).
        seed: seeds the weights, the batch order and the shifts.
        out: the folder to write mnist_lenet.npz and mnist_lenet.json to.
        reference: run only the plain compositions the tour teaches (no tinygan/fast/).
        overwrite: replace the files of an earlier run in ``out`` (else refused).
        replace_shipped_weights: also copy both over tinygan/weights/ (which every quality
            score uses); refused unless the held-out accuracy is at least the shipped
            weights' recorded one, on the same held-out images.
    """

    train_count: int = 8000
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    shift: int = 2
    seed: int = 0
    out: str = "runs/mnist_classifier"
    overwrite: bool = False
    reference: bool = False
    replace_shipped_weights: bool = False

    def __post_init__(self) -> None:
        require_positive(self, "epochs", "batch_size")
        # At least one batch to train on, at least one image held out.
        require_range(
            self, "train_count", low=self.batch_size, high=BUNDLED_IMAGES - 1, high_open=False
        )
        require_range(self, "lr", low=0, low_open=True)
        require_range(self, "shift", low=0, high=28)
        require_range(self, "seed", low=0)


def cross_entropy(logits: Tensor, labels: np.ndarray) -> Tensor:
    """Mean of -log softmax(logits)[label], from exp, sum and log (see the module docstring).

    ``F.cross_entropy`` computes the same with a fused log-sum-exp; this demo spells the loss
    out, and the shipped weights were trained with exactly this code.
    """
    shifted = logits - logits.max(axis=1, keepdims=True).detach()  # (N, 10), max 0 per row
    log_probs = shifted - shifted.exp().sum(axis=1, keepdims=True).log()
    one_hot = np.eye(logits.shape[1], dtype=np.float32)[labels]  # picks log_probs[i, y_i]
    return -(log_probs * one_hot).sum() / len(labels)


def random_shifts(images: np.ndarray, shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each (1, 28, 28) image moved by up to ``shift`` pixels each way (background -1 fills)."""
    if shift == 0:
        return images
    n, _, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (shift, shift), (shift, shift)), constant_values=-1)
    dy, dx = rng.integers(0, 2 * shift + 1, size=(2, n))
    return np.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def accuracy(model, images: np.ndarray, labels: np.ndarray, batch: int = 500) -> float:
    """Share of ``images`` (float (N, 1, 28, 28)) whose largest logit is the label."""
    model.eval()
    correct = 0
    with tg.no_grad():
        for start in range(0, len(images), batch):
            logits = model(Tensor(images[start : start + batch])).numpy()
            correct += int((logits.argmax(axis=1) == labels[start : start + batch]).sum())
    model.train()
    return correct / len(images)


def shipped_accuracy(config: ClassifierConfig) -> float:
    """The held-out accuracy the shipped weights record (checked before training).

    Raises:
        SystemExit: the shipped weights held out other images, so the accuracies would not
            be comparable.
    """
    shipped = json.loads(WEIGHTS_PATH.with_suffix(".json").read_text())
    start, stop = shipped["train_indices"]
    if [start, stop] != [0, config.train_count]:
        raise SystemExit(
            "--replace-shipped-weights compares held-out accuracies on the same images, but "
            f"train_count {stop} and {config.train_count} hold out different ones: use "
            f"--train-count {stop}"
        )
    return shipped["held_out_accuracy"]


def replace_shipped_weights(weights: Path) -> None:
    """Copy ``weights`` and its .json over the shipped classifier, each file atomically."""
    for source, target in (
        (weights, WEIGHTS_PATH),
        (weights.with_suffix(".json"), WEIGHTS_PATH.with_suffix(".json")),
    ):
        with atomic_write(target) as f:
            f.write(source.read_bytes())


def main() -> None:
    config = parse_config(ClassifierConfig)
    use_fast_paths(not config.reference)  # --reference: the tour's compositions only
    refuse_to_replace(config.out, ("mnist_lenet.npz", "mnist_lenet.json"), config.overwrite)
    to_beat = shipped_accuracy(config) if config.replace_shipped_weights else None
    started = time.perf_counter()
    images, labels = data.load_mnist("test", root=data.bundled_dataset_dir(), download=False)
    x = data.images_to_float(images)[:, None]  # (10000, 1, 28, 28) in [-1, 1]
    n = config.train_count
    x_train, y_train, x_held, y_held = x[:n], labels[:n], x[n:], labels[n:]
    print(f"training on images 0..{n - 1} of the bundled MNIST set, holding out {len(x_held)}")

    model = models.lenet(rng=np.random.default_rng(config.seed))
    opt = optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = n // config.batch_size  # the last, incomplete batch is left out
    total, step = config.epochs * steps_per_epoch, 0
    rng = np.random.default_rng(config.seed)
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(n)
        for i in range(steps_per_epoch):
            opt.lr = 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total))
            chosen = order[i * config.batch_size : (i + 1) * config.batch_size]
            batch = random_shifts(x_train[chosen], config.shift, rng)  # (B, 1, 28, 28)
            loss = cross_entropy(model(Tensor(batch)), y_train[chosen])
            opt.minimize(loss)
            step += 1
        held = accuracy(model, x_held, y_held)
        print(
            f"epoch {epoch}/{config.epochs}: loss {float(loss.data):.4f}, "
            f"held-out accuracy {held:.4f}, {time.perf_counter() - started:.0f} s"
        )

    held_acc, train_acc = accuracy(model, x_held, y_held), accuracy(model, x_train, y_train)
    wall = time.perf_counter() - started
    out = Path(config.out) / "mnist_lenet.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    tg.save_checkpoint(out, model=model)
    info = {
        "model": "tinygan.models.lenet",
        "data": "the bundled MNIST test set, datasets/mnist/t10k-{images,labels}-idx*-ubyte.gz",
        "train_indices": [0, n],
        "held_out_indices": [n, len(x)],
        "held_out_accuracy": held_acc,
        "train_accuracy": train_acc,
        **asdict(config),
        "command": shlex.join(["python", *sys.argv]),
        "threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "wall_seconds": round(wall, 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": datetime.date.today().isoformat(),
    }
    with atomic_write(out.with_suffix(".json")) as f:
        f.write(json.dumps(info, indent=2).encode() + b"\n")
    print(
        f"held-out accuracy {held_acc:.4f} ({len(x_held)} images), train {train_acc:.4f}; "
        f"{wall:.0f} s; wrote {out} and {out.with_suffix('.json').name}"
    )
    if to_beat is not None:
        if held_acc < to_beat:
            raise SystemExit(
                f"--replace-shipped-weights refused: the held-out accuracy {held_acc:.4f} is "
                f"below the shipped weights' {to_beat:.4f}, which stay as they are"
            )
        replace_shipped_weights(out)
        print(f"replaced the shipped {WEIGHTS_PATH} and its .json ({to_beat:.4f} before)")


if __name__ == "__main__":
    run_main(main)
