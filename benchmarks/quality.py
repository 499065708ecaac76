"""Sample quality of every MNIST demo configuration after the same wall-clock budget.

    OPENBLAS_NUM_THREADS=1 taskset -c 1 python benchmarks/quality.py --minutes 4

Each configuration below (the settings of demos/mnist_*.py) trains from the same seed with
:func:`tinygan.train.train`, the loop the demos run, for ``--minutes`` of wall-clock time
(see :func:`train_for`), on the demos' data (MNIST's training set if it is on disk, else
the 10,000 bundled images). ``demos/mnist_lsgan.py`` writes its loop out; ``train`` with
its settings (loss "lsgan", one discriminator step) runs the same updates on the same
batches and noise. Then ``--samples`` generated images are scored with tinygan.metrics
(Fréchet distance to the classifier's real training part, inception-style score, class
coverage), and a markdown table is printed with the real-vs-real floor, the steps done,
the wall time and the machine. Each run folder (``--out``/<name>) holds the usual
config.json, samples, losses and checkpoint, so ``demos/evaluate.py --checkpoint`` can
score it again.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import shlex
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks.common import machine
from tinygan import data, metrics, models
from tinygan.gan import LOSSES, generate_many
from tinygan.train import MnistConfig, train
from tinygan.utils.run import Run

_MLP = dict(model="mlp", z_dim=96, batch_size=128, lr_g=1e-3, lr_d=1e-3)  # demos/mnist_gan.py
CONFIGS = {  # name -> (MnistConfig settings, the demo command it stands for)
    "MLP GAN": (dict(_MLP, loss="gan"), "mnist_gan.py"),
    "MLP LSGAN": (dict(_MLP, loss="lsgan"), "mnist_gan.py --loss lsgan"),
    "DCGAN-28 GAN": (dict(model="dcgan", loss="gan"), "mnist_dcgan.py"),
    "DCGAN-28 LSGAN": (dict(model="dcgan", loss="lsgan"), "mnist_lsgan.py"),
    "DCGAN-28 WGAN-GP": (
        dict(model="dcgan", loss="wgan-gp", d_steps=5, lr_g=1e-4, lr_d=1e-4, beta2=0.9),
        "mnist_wgan_gp.py",
    ),
}


def train_for(settings: dict, seconds: float, images: np.ndarray, args) -> Run:
    """The run of ``settings`` after ``seconds`` of training (to within half a step).

    ``train`` runs to a step count, so the budget is turned into steps from the measured
    time per step, re-measured at least every 30 s (the machine may get busier): each
    ``train`` call after the probe resumes from the checkpoint the previous one ended
    with, which makes the steps exactly those of one uninterrupted run. The sample grid
    and checkpoint at the end of each call, and the loading of the checkpoint, are not
    counted by the run's clock (``history["seconds"]``, the time spent in steps).
    """
    out = Path(args.out) / "-".join(f"{settings['model']} {settings['loss']}".split())
    config = MnistConfig(
        **settings, seed=args.seed, device="cpu", steps=args.probe_steps, out=str(out),
        sample_every=10**9, checkpoint_every=10**9,  # only at the end of each train()
        overwrite=True,  # a benchmark run replaces the previous benchmark's folder
    )  # fmt: skip
    critic = LOSSES[config.loss].critic
    generator, discriminator = models.mnist_models(config.model, config.z_dim, critic, config.seed)
    loader = data.BatchLoader(images, config.batch_size, seed=config.seed)
    run = train(generator, discriminator, loader, config, stream=io.StringIO())  # the probe
    while True:  # the probe's first step (allocations) is left out of the rate
        times = run.history["seconds"]
        per_step = (times[-1] - times[0]) / (len(times) - 1)
        left = seconds - times[-1]
        if left < per_step / 2:
            return run
        config.steps = run.step + max(1, round(min(left, 30.0) / per_step))
        config.resume, config.overwrite = True, False
        run = train(generator, discriminator, loader, config, stream=io.StringIO())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training time per model")
    parser.add_argument("--samples", type=int, default=5000, help="generated images scored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-steps", type=int, default=20, help="steps that time a step")
    parser.add_argument("--only", nargs="*", default=list(CONFIGS), help="configurations")
    parser.add_argument("--out", default="runs/quality", help="folder of the runs")
    args = parser.parse_args()
    if args.probe_steps < 2:
        parser.error("--probe-steps must be at least 2: the first step is not timed")

    images, _ = data.load_mnist_or_bundled(download=False, log=print)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"{machine()}; this process may use {cores} core(s), "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}",
        flush=True,
    )
    rows = []
    for name in args.only:
        settings, demo = CONFIGS[name]
        run = train_for(settings, 60.0 * args.minutes, images, args)
        wall = run.history["seconds"][-1]
        z = np.random.default_rng([args.seed, 99]).standard_normal(
            (args.samples, run.config.z_dim), dtype=np.float32
        )
        scores = metrics.score(generate_many(run.generator, z))
        print(f"{name}: {run.step} steps in {wall:.0f} s; {scores.summary()}", flush=True)
        rows.append((f"{name} (`{demo}`)", run.step, wall, scores))
    floor = metrics.real_floor()

    print()
    print(
        f"`{shlex.join(['python', *sys.argv])}`, {datetime.date.today().isoformat()}; "
        f"{args.minutes:g} min of training each, seed {args.seed}, {args.samples} samples scored"
    )
    print()
    print("| configuration | steps | wall (s) | FD ↓ | IS ↑ | classes ↑ | class KL ↓ |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, steps, wall, s in rows:
        print(
            f"| {label} | {steps} | {wall:.0f} | {s.fd:.2f} | {s.inception_score:.2f} ± "
            f"{s.inception_std:.2f} | {s.classes}/10 | {s.class_kl:.3f} |"
        )
    print(
        f"| real digits (floor: 4,000 vs 4,000 real) | | | {floor.fd:.2f} | "
        f"{floor.inception_score:.2f} ± {floor.inception_std:.2f} | {floor.classes}/10 | "
        f"{floor.class_kl:.3f} |"
    )


if __name__ == "__main__":
    main()
