"""Score a trained MNIST generator: Fréchet distance, inception-style score, class coverage.

    python demos/evaluate.py --checkpoint runs/mnist_lsgan/checkpoint.npz
    python demos/evaluate.py --real            # only the real-vs-real floor

The generator is rebuilt from the run's ``config.json`` (beside the checkpoint: its
``model`` and ``z_dim``), loaded from the checkpoint, and made to draw ``--samples``
images, which the classifier of tinygan.metrics scores (see that module for the formulas
and which real images are the reference). The real-vs-real floor is printed below: the
scores of real digits, the best a generator can hope for at about this sample size.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from tinygan import metrics, models
from tinygan.backend import normalize_device, resolve_device
from tinygan.checkpoint import read_checkpoint
from tinygan.gan import generate_many
from tinygan.train import MnistConfig
from tinygan.utils.cli import parse_config, require_range
from tinygan.utils.run import load_sampler


@dataclass
class EvaluateConfig:
    """Score an MNIST generator checkpoint with tinygan.metrics, beside the real-data floor.

    Attributes:
        checkpoint: a training run's checkpoint.npz (its config.json must be beside it).
        samples: generated images to score (more than the classifier's 128 features, whose
            covariance the Fréchet distance estimates; thousands for a stable score).
        seed: seed of the noise.
        device: where the generator runs: "auto", "cpu" or "cuda".
        real: print only the real-vs-real floor.
    """

    checkpoint: str = ""
    samples: int = 5000
    seed: int = 0
    device: str = "auto"
    real: bool = False

    def __post_init__(self) -> None:
        require_range(self, "samples", low=129)
        require_range(self, "seed", low=0)
        if self.device != "auto":
            normalize_device(self.device)


def load_generator(checkpoint: Path, device: str):
    """The generator of the run that wrote ``checkpoint``, and that run's settings."""
    config_path = checkpoint.parent / "config.json"
    if not config_path.is_file():
        raise SystemExit(f"{config_path} is missing: it says which generator the checkpoint holds")
    saved = json.loads(config_path.read_text())
    if "model" not in saved or saved.get("dataset", "mnist") != "mnist":
        raise SystemExit(
            f"{checkpoint.parent} is not an MNIST run (dataset {saved.get('dataset')!r}): the "
            "scores come from an MNIST digit classifier and mean nothing for other images"
        )
    # Only what rebuilds the generator: the run's data folder, say, may be gone by now.
    run_config = MnistConfig(**{k: saved[k] for k in ("model", "z_dim", "loss") if k in saved})
    generator, _ = models.mnist_models(run_config.model, run_config.z_dim)  # weights: below
    generator.to(device)
    which = load_sampler(generator, checkpoint, run_config.z_dim)  # the EMA, if the run kept one
    step = int(read_checkpoint(checkpoint)["step"])
    return generator, run_config, f"{step} ({which} weights)"


def main() -> None:
    config = parse_config(EvaluateConfig)
    if not config.real:
        if not config.checkpoint:
            raise SystemExit("give --checkpoint PATH (a run's checkpoint.npz), or --real")
        checkpoint = Path(config.checkpoint)
        device = resolve_device(config.device)
        generator, run_config, step = load_generator(checkpoint, device)
        rng = np.random.default_rng(config.seed)
        z = rng.standard_normal((config.samples, run_config.z_dim), dtype=np.float32)
        images = generate_many(generator, z, device)  # (N, 1, 28, 28) in [-1, 1]
        print(f"{checkpoint}: {run_config.model} generator, {run_config.loss} loss, step {step}")
        print(f"generated:          {metrics.score(images).summary()}")
    floor = metrics.real_floor()
    print(f"real-vs-real floor: {floor.summary()}")
    print(
        "(FD: lower is better, the floor compares two disjoint halves of the real images; "
        "IS: at most 10; classes: digits predicted for at least 1% of the images)"
    )


if __name__ == "__main__":
    main()
