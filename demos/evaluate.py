"""Score a trained MNIST generator: Fréchet distance, inception-style score, class coverage.

    python demos/evaluate.py --checkpoint runs/mnist_lsgan/checkpoint.npz
    python demos/evaluate.py --checkpoint runs/mnist_lsgan/checkpoint.npz --samples 2000
    python demos/evaluate.py --real            # only the real-vs-real floor

The checkpoint is scored exactly as the run that wrote it scores itself (its
``--eval-every``, tinygan.utils.run.Run.evaluate). The run's ``config.json``, beside the
checkpoint, gives its ``model``, ``z_dim`` and ``seed``; the generator is rebuilt and
loaded with the weights the run samples with (the EMA of G when the run kept one, its
BatchNorm statistics measured on the run's own noise stream, see load_sampler); and it
draws ``--samples`` images from the run's evaluation noise,
``RandomStreams(seed).evaluation_noise``, which the classifier of tinygan.metrics scores
(see that module for the formulas and which real images are the reference). A run scores
2,000 images, so ``--samples 2000`` prints the scores of the run's ``metrics.csv`` row of
the checkpoint's step (to the digits printed); the default 5,000 extend the same noise.

Without a ``config.json`` beside the checkpoint (or with one that lacks ``z_dim`` or
``seed``), the flags ``--model``, ``--z-dim`` and ``--seed`` stand in, and a line says
so: the scores are then the run's only if those were its settings. A checkpoint that
cannot be read (cut short, not a tinygan checkpoint) or that holds another generator ends
the program in one line (status 1) that says what it is (``--debug``: the traceback).
The real-vs-real floor is printed below: the scores of real digits, the best a generator
can hope for at about this sample size.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from tinygan import metrics, models
from tinygan.backend import normalize_device, resolve_device
from tinygan.checkpoint import CheckpointMismatchError, read_checkpoint
from tinygan.gan import generate_many
from tinygan.utils.cli import (
    parse_config,
    require_choice,
    require_positive,
    require_range,
    run_main,
)
from tinygan.utils.run import load_sampler
from tinygan.utils.streams import RandomStreams

RUN_SETTINGS = ("model", "z_dim", "seed")  # what rebuilds the generator and its noise
_FLAGS_STOOD_IN = " (no config.json beside it: --model and --z-dim stood in; give the run's)"


@dataclass
class EvaluateConfig:
    """Score an MNIST generator checkpoint with tinygan.metrics, beside the real-data floor.

    Attributes:
        checkpoint: a training run's checkpoint.npz (the run's config.json beside it says
            which generator it holds and the run's seed).
        samples: generated images to score (more than the classifier's 128 features, whose
            covariance the Fréchet distance estimates; thousands for a stable score; 2000
            gives the scores of the run's own metrics.csv).
        model: the generator, "dcgan" or "mlp", only where the checkpoint's folder has no
            config.json (a config.json's model wins).
        z_dim: the size of its noise, only where config.json does not give it.
        seed: the run's seed, only where config.json does not give it: it picks the
            evaluation noise and the noise that measures an EMA's BatchNorm statistics.
        device: where the generator runs: "auto", "cpu" or "cuda".
        real: print only the real-vs-real floor.
    """

    checkpoint: str = ""
    samples: int = 5000
    model: str = "dcgan"
    z_dim: int = 100
    seed: int = 0
    device: str = "auto"
    real: bool = False

    def __post_init__(self) -> None:
        require_range(self, "samples", low=129)
        require_range(self, "seed", low=0)
        require_positive(self, "z_dim")
        require_choice("model", self.model, models.MNIST_MODELS)
        if self.device != "auto":
            normalize_device(self.device)


def run_settings(checkpoint: Path, config: EvaluateConfig) -> dict[str, Any]:
    """The ``model``, ``z_dim`` and ``seed`` (and ``loss``, if it names one) of the run that
    wrote ``checkpoint``, from its ``config.json``; the flags stand in for what is missing,
    and a line says so.
    """
    flags = {name: getattr(config, name) for name in RUN_SETTINGS}
    shown = " ".join(f"--{name.replace('_', '-')} {value}" for name, value in flags.items())
    config_path = checkpoint.parent / "config.json"
    if not config_path.is_file():
        print(
            f"{config_path} is missing, so the flags say which run this is ({shown}): the "
            "scores are the run's only if these were its settings"
        )
        return flags
    saved = json.loads(config_path.read_text())
    if "model" not in saved or saved.get("dataset", "mnist") != "mnist":
        raise SystemExit(
            f"{checkpoint.parent} holds no unconditional MNIST GAN run (its config.json: "
            f"model {saved.get('model')!r}, dataset {saved.get('dataset')!r}); the scores come "
            "from an MNIST digit classifier, for the generators of mnist_lsgan.py, "
            "mnist_gan.py, mnist_dcgan.py and mnist_wgan_gp.py"
        )
    missing = [name for name in RUN_SETTINGS if name not in saved]
    if missing:
        given = ", ".join(f"--{name.replace('_', '-')} {flags[name]}" for name in missing)
        print(f"{config_path} does not give {', '.join(missing)}: using the flags' {given}")
    defaults = {f.name: f.default for f in fields(EvaluateConfig)}
    for name in RUN_SETTINGS:
        if name in saved and flags[name] not in (defaults[name], saved[name]):
            print(f"--{name.replace('_', '-')} {flags[name]} ignored: the run's is {saved[name]}")
    # Only what rebuilds the generator and its noise: the run's data folder may be gone.
    settings = flags | {name: saved[name] for name in RUN_SETTINGS if name in saved}
    if "loss" in saved:
        settings["loss"] = saved["loss"]
    return settings


def score_checkpoint(
    checkpoint: Path, settings: dict[str, Any], samples: int, device: str
) -> tuple[metrics.QualityScores, str]:
    """The scores of ``samples`` images drawn as the run draws the images it scores, and a
    line saying what drew them.

    Args:
        checkpoint: the run's checkpoint.npz.
        settings: the run's ``model``, ``z_dim``, ``seed`` (and ``loss``), as
            :func:`run_settings` gives them.
        samples: how many images; the first 2,000 are those the run scores.
        device: where the generator runs ("cpu" or "cuda").
    """
    z_dim, seed = settings["z_dim"], settings["seed"]
    generator, _ = models.mnist_models(settings["model"], z_dim)  # the weights: below
    generator.to(device)
    which = load_sampler(generator, checkpoint, z_dim, seed)  # the EMA, if the run kept one
    step = int(read_checkpoint(checkpoint)["step"])
    z = RandomStreams(seed).evaluation_noise(samples, z_dim)  # the run's evaluation noise
    images = generate_many(generator, z, device)  # (N, 1, 28, 28) in [-1, 1]
    loss = f", {settings['loss']} loss" if "loss" in settings else ""
    line = (
        f"{checkpoint}: {settings['model']} generator{loss}, step {step} ({which} weights), "
        f"the evaluation noise of seed {seed}"
    )
    return metrics.score(images), line


def main() -> None:
    config = parse_config(EvaluateConfig)
    if not config.real:
        if not config.checkpoint:
            raise SystemExit("give --checkpoint PATH (a run's checkpoint.npz), or --real")
        checkpoint = Path(config.checkpoint)
        if not checkpoint.is_file():
            raise SystemExit(f"{checkpoint} is not a file: give a run's checkpoint.npz")
        settings = run_settings(checkpoint, config)
        try:
            scores, line = score_checkpoint(
                checkpoint, settings, config.samples, resolve_device(config.device)
            )
        except CheckpointMismatchError as err:  # another generator's: say what stood in
            if (checkpoint.parent / "config.json").is_file():
                raise
            raise CheckpointMismatchError(f"{err}{_FLAGS_STOOD_IN}") from err
        print(line)
        print(f"generated:          {scores.summary()}")
    floor = metrics.real_floor()
    print(f"real-vs-real floor: {floor.summary()}")
    print(
        "(FD: lower is better, the floor compares two disjoint halves of the real images; "
        "IS: at most 10; classes: digits predicted for at least 1% of the images)"
    )


if __name__ == "__main__":
    run_main(main)  # a damaged checkpoint, another model's: one line, status 1
