"""Semi-supervised MNIST: a GAN's discriminator that is also a classifier, from 100 labels.

    python demos/mnist_semi_supervised.py            # 10 labels per class; ~10 min, one core
    python demos/mnist_semi_supervised.py --dataset fashion-mnist
    python demos/mnist_semi_supervised.py --labels-per-class 5 --model conv
    python demos/mnist_semi_supervised.py --help     # every setting

Salimans et al., "Improved Techniques for Training GANs" (2016), section 5. A few
training images keep their labels (``--labels-per-class`` of each class, chosen by
``--seed``); all of them are used without labels too. The discriminator is a classifier
over the 10 classes plus an implicit "fake" class, trained on three batches per step:

    labelled:    cross-entropy over the 10 classes
    unlabelled:  -log D(x),        D(x) = Z / (Z + 1),   Z = sum_k exp(logit_k)
    generated:   -log(1 - D(G(z)))

and the generator by feature matching (tinygan/semi_supervised.py has the details,
tinygan/losses_semi_supervised.py the derivations). For comparison, the same network, from the same
initial weights, is trained for as many steps on the labelled images alone. Both are
scored on test images the training never sees; the last lines printed are a row of the
README's table. Output in runs/mnist_semi_supervised/: results.json (settings, accuracy
curves, times) and samples.png (the generator's images).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from tinygan import data, models, optim, use_fast_paths
from tinygan.backend import normalize_device, resolve_device
from tinygan.gan import generate
from tinygan.semi_supervised import (
    SemiSupervisedGAN,
    accuracy,
    balanced_label_subset,
    conv_classifier28,
    mlp_classifier,
    supervised_step,
)
from tinygan.tensor import Tensor
from tinygan.utils.cli import (
    parse_config,
    require_choice,
    require_folder,
    require_positive,
    require_range,
    run_main,
    usage_errors,
)
from tinygan.utils.fileio import atomic_write, refuse_to_replace
from tinygan.utils.images import save_grid
from tinygan.utils.progress import Progress, format_seconds
from tinygan.utils.streams import LABELLED, RandomStreams

HOLD_OUT = 2000  # bundled MNIST test images kept for testing when MNIST's training set is missing


@dataclass
class SemiSupervisedConfig:
    """Train a GAN discriminator as a classifier from a few labels, and a labels-only baseline.

    Attributes:
        dataset: "mnist" or "fashion-mnist".
        data_root: the folder with the IDX files (then the only one looked at).
        download: fetch missing files from the dataset's mirrors.
        labels_per_class: labelled training images kept per class (10: 100 labels in all).
        model: "mlp" (the paper's MNIST networks) or "conv" (the DCGAN-28 networks, the
            discriminator at half width with noise instead of BatchNorm).
        steps: updates of each network, for the GAN and the baseline alike.
        batch_size: labelled, unlabelled and generated images in each step.
        lr: Adam's learning rate (betas 0.5 and 0.999), for every network.
        z_dim: size of the generator's noise.
        input_noise: standard deviation of the Gaussian noise added to the classifier's
            input (training only).
        hidden_noise: standard deviation of the Gaussian noise added after each of the
            classifier's hidden layers (training only).
        seed: seeds the choice of labelled images, the weights, the noise and the batches.
        baseline: also train the labelled-only baseline.
        device: "auto" (the GPU when there is one), "cpu" or "cuda".
        eval_every: steps between test accuracies.
        log_every: steps between progress lines when output is not a terminal.
        out: the output folder.
        reference: run only the plain compositions the tour teaches (no tinygan/fast/).
        overwrite: replace the results of an earlier run in ``out`` (else refused).
    """

    dataset: str = "mnist"
    data_root: str = ""
    download: bool = True
    labels_per_class: int = 10
    model: str = "mlp"
    steps: int = 5000
    batch_size: int = 100
    lr: float = 1e-3
    z_dim: int = 100
    input_noise: float = 0.3
    hidden_noise: float = 0.5
    seed: int = 0
    baseline: bool = True
    device: str = "auto"
    eval_every: int = 500
    log_every: int = 100
    out: str = "runs/mnist_semi_supervised"
    overwrite: bool = False
    reference: bool = False

    def __post_init__(self) -> None:
        require_choice("dataset", self.dataset, ("mnist", "fashion-mnist"))
        require_choice("model", self.model, ("mlp", "conv"))
        require_positive(
            self, "labels_per_class", "steps", "batch_size", "z_dim", "eval_every", "log_every"
        )
        require_range(self, "lr", low=0, low_open=True)
        require_range(self, "input_noise", "hidden_noise", "seed", low=0)
        require_folder(self, "data_root")
        if self.device != "auto":
            normalize_device(self.device)


def load_data(config: SemiSupervisedConfig):
    """(train images, train labels, test images, test labels, which data and how split)."""
    root = config.data_root or None
    if config.dataset == "fashion-mnist":
        try:
            train = data.load_fashion_mnist("train", root=root, download=config.download)
            test = data.load_fashion_mnist("test", root=root, download=config.download)
        except data.DatasetError as e:
            raise SystemExit(f"{e}\n(give the folder of the IDX files with --data-root)") from e
        return *train, *test, f"Fashion-MNIST: train {len(train[0]):,} / test {len(test[0]):,}"
    try:
        train = data.load_mnist("train", root=root, download=config.download)
        test = data.load_mnist("test", root=root, download=config.download)
        return *train, *test, f"MNIST: train {len(train[0]):,} / test {len(test[0]):,}"
    except data.DatasetError as e:
        print(f"MNIST's 60,000 training images are unavailable ({e})")
    images, labels = data.load_mnist("test", root=data.bundled_dataset_dir("mnist"), download=False)
    cut = len(images) - HOLD_OUT
    print(
        f"so the {len(images):,} bundled MNIST test images are split: images 0..{cut - 1} for "
        f"training, {cut}..{len(images) - 1} held out for testing"
    )
    return (
        images[:cut], labels[:cut], images[cut:], labels[cut:],
        f"MNIST (bundled test set split): train {cut:,} / held-out {HOLD_OUT:,}",
    )  # fmt: skip


def build_classifier(config: SemiSupervisedConfig):
    """A fresh classifier: the same initial weights on every call with the same seed."""
    rng = np.random.default_rng(config.seed)
    noise = {"input_noise": config.input_noise, "hidden_noise": config.hidden_noise}
    if config.model == "mlp":
        return mlp_classifier(10, **noise, rng=rng)
    return conv_classifier28(10, **noise, rng=rng)


def build_generator(config: SemiSupervisedConfig):
    rng = np.random.default_rng([config.seed, 1])
    if config.model == "mlp":
        return models.mlp_generator(config.z_dim, hidden=500, batch_norm=True, rng=rng)
    return models.dcgan28_generator(config.z_dim, rng=rng)


def train(name: str, classifier, update, config, test_images, test_labels) -> dict:
    """Call ``update(step)`` for every step, with a progress line and test accuracies.

    Returns:
        {"accuracy": the final test accuracy, "curve": [[step, accuracy], ...], "seconds"}
    """
    progress = Progress(config.steps, stream=sys.stdout, log_every=config.log_every)
    progress.message(f"{name}: {config.steps} steps")
    curve = []
    for step in range(config.steps):
        progress.update(step + 1, update(step))
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            curve.append([step + 1, accuracy(classifier, test_images, test_labels)])
            progress.message(f"{name}: step {step + 1}, test accuracy {curve[-1][1]:.2%}")
    return {"accuracy": curve[-1][1], "curve": curve, "seconds": progress.elapsed()}


def main() -> None:
    config = parse_config(SemiSupervisedConfig)
    use_fast_paths(not config.reference)  # --reference: the tour's compositions only
    refuse_to_replace(config.out, ("results.json", "samples.png"), config.overwrite)
    device = resolve_device(config.device)
    train_x, train_y, test_x, test_y, source = load_data(config)
    print(source)
    with usage_errors():  # more labels per class, or a larger batch, than the data holds
        labelled = balanced_label_subset(train_y, config.labels_per_class, config.seed, 10)
        unlabelled = data.BatchLoader(train_x, config.batch_size, seed=config.seed)
    print(
        f"{len(labelled)} labelled training images ({config.labels_per_class} per class, seed "
        f"{config.seed}); all {len(train_x):,} used unlabelled; {len(test_x):,} test images"
    )
    train_images = data.images_to_float(train_x)[:, None]  # (N, 1, 28, 28) in [-1, 1]
    test = (data.images_to_float(test_x)[:, None], test_y)
    streams = RandomStreams(config.seed)

    def labelled_batch(step: int) -> tuple[Tensor, np.ndarray]:
        """Step ``step``'s labelled batch, drawn with replacement; the same for both models."""
        rng = streams.rng(LABELLED, step)
        chosen = labelled[rng.integers(0, len(labelled), size=config.batch_size)]
        return Tensor(train_images[chosen]).to(device), train_y[chosen].astype(np.int64)

    # ---- the semi-supervised GAN
    classifier = build_classifier(config).to(device)
    generator = build_generator(config).to(device)
    gan = SemiSupervisedGAN(classifier, generator, config.z_dim, config.lr, seed=config.seed)

    def gan_update(step: int) -> dict[str, float]:
        images, labels = labelled_batch(step)
        values = gan.train_step(images, labels, Tensor(unlabelled.batch(step)).to(device))
        return {"sup": values["supervised"], "unsup": values["unsupervised"],
                "fm": values["feature_matching"]}  # fmt: skip

    results = {"config": asdict(config), "data": source, "labelled": len(labelled)}
    results["semi_supervised"] = train("semi-supervised GAN", classifier, gan_update, config, *test)
    out = Path(config.out)
    save_grid(generate(generator, gan.noise(64)), out / "samples.png", nrow=8)

    # ---- the baseline: the same network, the same first weights, labelled images only
    baseline = "-"
    if config.baseline:
        classifier = build_classifier(config).to(device)
        opt = optim.Adam(classifier.parameters(), lr=config.lr, betas=(0.5, 0.999))

        def baseline_update(step: int) -> dict[str, float]:
            return {"sup": supervised_step(classifier, opt, *labelled_batch(step))}

        results["labelled_only"] = train(
            "labelled only", classifier, baseline_update, config, *test
        )
        baseline = f"{results['labelled_only']['accuracy']:.2%}"

    with atomic_write(out / "results.json") as f:
        f.write(json.dumps(results, indent=2).encode() + b"\n")
    seconds = sum(
        results[k]["seconds"] for k in ("semi_supervised", "labelled_only") if k in results
    )
    print(f"results in {(out / 'results.json').resolve()}, samples in {out.resolve()}/samples.png")
    print("| data | labels | model | steps | semi-supervised GAN | labelled only | time |")
    print(
        f"| {source} | {len(labelled)} | {config.model} | {config.steps} | "
        f"{results['semi_supervised']['accuracy']:.2%} | {baseline} | {format_seconds(seconds)} |"
    )


if __name__ == "__main__":
    run_main(main)
