"""Sample quality of every MNIST demo configuration after the same wall-clock budget, and
a sweep of the main demo's recipe over seeds.

    OPENBLAS_NUM_THREADS=1 taskset -c 1 python benchmarks/quality.py --minutes 4
    OPENBLAS_NUM_THREADS=1 python benchmarks/quality.py --sweep --only mlp-gan --seeds 0 1 2
    python benchmarks/quality.py --sweep --report

``--sweep`` trains each recipe of :data:`RECIPES` from each seed and scores its generator,
and the EMA of its weights when the recipe keeps one, at the recipe's steps; each run's
scores go to ``scores.json`` in its folder, and ``--report`` prints the table of every run
in ``--out`` (mean, standard deviation and range over the seeds). Steps, not minutes: the
scores then do not depend on the machine or on what else it is doing.

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
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks.common import machine
from tinygan import data, metrics, models
from tinygan.gan import generate_many
from tinygan.tensor import Tensor
from tinygan.train import MnistConfig, discriminator_batchnorm, train
from tinygan.utils.fileio import atomic_write
from tinygan.utils.run import Run

_MLP = dict(model="mlp", z_dim=96, batch_size=128, lr_g=1e-3, lr_d=1e-3)  # demos/mnist_gan.py
_FASTER_G = dict(lr_g=1e-3, lr_d=2e-4, ema=0.995)  # the DCGAN-28 demos' recipe
CONFIGS = {  # name -> (MnistConfig settings, the demo command it stands for)
    "MLP GAN": (dict(_MLP, loss="gan", ema=0.995), "mnist_gan.py"),
    "MLP LSGAN": (dict(_MLP, loss="lsgan", ema=0.995), "mnist_gan.py --loss lsgan"),
    "DCGAN-28 GAN": (dict(model="dcgan", loss="gan", **_FASTER_G), "mnist_dcgan.py"),
    "DCGAN-28 LSGAN": (dict(model="dcgan", loss="lsgan", **_FASTER_G, beta2=0.9), "mnist_lsgan.py"),
    "DCGAN-28 WGAN-GP": (
        dict(model="dcgan", loss="wgan-gp", d_steps=5, lr_g=5e-4, lr_d=1e-4, beta2=0.9),
        "mnist_wgan_gp.py",
    ),
}


def ema_sampler(run):
    """What the run draws with: its EMA of G, BatchNorm re-measured as the loop does, or G."""
    if run.ema is None:
        return run.generator
    run.ema.recompute_batchnorm(Tensor(b) for b in run.streams.batchnorm_noise(run.config.z_dim))
    return run.ema.model


def train_config(config: MnistConfig, images: np.ndarray) -> Run:
    """Train fresh networks of ``config`` (seeded by it) on ``images``; with ``resume``,
    they continue from the checkpoint in ``config.out``, exactly."""
    batchnorm = discriminator_batchnorm(config)
    generator, discriminator = models.mnist_models(
        config.model, config.z_dim, d_batchnorm=batchnorm, seed=config.seed
    )
    loader = data.BatchLoader(images, config.batch_size, seed=config.seed)
    return train(generator, discriminator, loader, config, stream=io.StringIO())


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
    run = train_config(config, images)  # the probe
    while True:  # the probe's first step (allocations) is left out of the rate
        times = run.history["seconds"]
        per_step = (times[-1] - times[0]) / (len(times) - 1)
        left = seconds - times[-1]
        if left < per_step / 2:
            return run
        config.steps = run.step + max(1, round(min(left, 30.0) / per_step))
        config.resume, config.overwrite = True, False
        run = train_config(config, images)


@dataclass(frozen=True)
class Recipe:
    """One line of the sweep: MnistConfig settings, and the steps at which it is scored.

    At each step of ``score_at`` the run's generator and (when ``ema`` is set) its EMA are
    both scored: an EMA only watches the training, so one run measures the recipe with and
    without it.
    """

    label: str
    settings: dict
    score_at: tuple[int, ...]


_DCGAN = dict(model="dcgan", loss="lsgan")
_MLP_EMA = dict(_MLP, ema=0.995)
_LAB = dict(_MLP, ema=0.0)  # the lab's runs draw with G itself: what the game makes
_WGAN = dict(model="dcgan", loss="wgan-gp", d_steps=5, lr_g=1e-4, lr_d=1e-4, beta2=0.9)
RECIPES = {  # name (for --only) -> recipe
    "dcgan-lsgan-2e-4": Recipe(
        "DCGAN-28 LSGAN, Adam 2e-4 for both (mnist_lsgan.py in 0.1.0)", _DCGAN, (2000,)
    ),
    "dcgan-lsgan": Recipe(
        "DCGAN-28 LSGAN, G 1e-3, D 2e-4 (mnist_lsgan.py in 0.2.0)",
        dict(_DCGAN, **_FASTER_G),
        (1000, 1500, 2000),
    ),
    "dcgan-lsgan-b0.9": Recipe(
        "DCGAN-28 LSGAN, G 1e-3, D 2e-4, betas (0.5, 0.9) (mnist_lsgan.py, 1,500 steps)",
        dict(_DCGAN, **_FASTER_G, beta2=0.9),
        (1000, 1500, 2000),
    ),
    "dcgan-lsgan-b32": Recipe(
        "DCGAN-28 LSGAN, mnist_lsgan.py's rates, batch 32",
        dict(_DCGAN, **_FASTER_G, beta2=0.9, batch_size=32),
        (2000, 3000),
    ),
    "dcgan-lsgan-sn": Recipe(
        "DCGAN-28 LSGAN, mnist_lsgan.py's recipe, spectral norm on D (no BatchNorm)",
        dict(_DCGAN, **_FASTER_G, beta2=0.9, spectral_norm=True),
        (1000, 1500, 2000, 2500),
    ),
    "dcgan-lsgan-sn-b32": Recipe(
        "DCGAN-28 LSGAN, mnist_lsgan.py's rates, spectral norm on D, batch 32",
        dict(_DCGAN, **_FASTER_G, beta2=0.9, spectral_norm=True, batch_size=32),
        (2000, 3000, 4000),
    ),
    "dcgan-lsgan-r1": Recipe(
        "DCGAN-28 LSGAN, mnist_lsgan.py's recipe, R1 gamma 1 on D (no BatchNorm)",
        dict(_DCGAN, **_FASTER_G, beta2=0.9, r1_gamma=1.0),
        (1000, 1500),
    ),
    "dcgan-lsgan-augment": Recipe(
        "DCGAN-28 LSGAN, mnist_lsgan.py's recipe, DiffAugment translation",
        dict(_DCGAN, **_FASTER_G, beta2=0.9, augment="translation"),
        (1000, 1500),
    ),
    "dcgan-hinge-sn": Recipe(
        "DCGAN-28 hinge loss, mnist_lsgan.py's rates, spectral norm on D (SN-GAN)",
        dict(_DCGAN, **_FASTER_G, beta2=0.9, loss="hinge", spectral_norm=True),
        (1000, 1500),
    ),
    "dcgan-gan-2e-4": Recipe(
        "DCGAN-28 GAN, Adam 2e-4 for both (mnist_dcgan.py in 0.1.0)",
        dict(_DCGAN, loss="gan"),
        (2000,),
    ),
    "dcgan-gan": Recipe(
        "DCGAN-28 GAN, G 1e-3, D 2e-4 (mnist_dcgan.py)",
        dict(_DCGAN, loss="gan", **_FASTER_G),
        (1000, 2000),
    ),
    "mlp-gan": Recipe(
        "MLP GAN, Adam 1e-3 for both, batch 128",
        dict(_MLP_EMA, loss="gan"),
        (2000, 5000, 8000, 10000),
    ),
    "mlp-lsgan": Recipe(
        "MLP LSGAN, Adam 1e-3 for both, batch 128",
        dict(_MLP_EMA, loss="lsgan"),
        (2000, 5000, 8000, 10000),
    ),
    # The lab (docs/11-lab.md): MLP runs of a few CPU-minutes that fail, and their fixes.
    "lab-saturating": Recipe(
        "lab: MLP GAN, the saturating G loss, Adam 1e-3 (0.5, 0.999)",
        dict(_LAB, loss="gan-saturating"),
        (1000, 1500),
    ),
    "lab-gan": Recipe(
        "lab: MLP GAN, the non-saturating G loss, Adam 1e-3 (0.5, 0.999)",
        dict(_LAB, loss="gan"),
        (1000, 1500),
    ),
    "lab-hot": Recipe(
        "lab: MLP GAN, Adam 2e-3 (0.9, 0.999)",
        dict(_LAB, loss="gan", lr_g=2e-3, lr_d=2e-3, beta1=0.9),
        (1000, 1500),
    ),
    "lab-hot-b0.5": Recipe(
        "lab: MLP GAN, Adam 2e-3 (0.5, 0.999)",
        dict(_LAB, loss="gan", lr_g=2e-3, lr_d=2e-3),
        (1000, 1500),
    ),
    "lab-fast-g": Recipe(
        "lab: MLP GAN, Adam 4e-3 for G, 1e-3 for D (0.5, 0.999)",
        dict(_LAB, loss="gan", lr_g=4e-3),
        (1000, 1500),
    ),
    "wgan-gp": Recipe(
        "DCGAN-28 WGAN-GP, k = 5, Adam 1e-4 (0.5, 0.9) (mnist_wgan_gp.py in 0.1.0)",
        dict(_WGAN, ema=0.995),
        (500, 1000),
    ),
    "wgan-gp-g5e-4": Recipe(
        "DCGAN-28 WGAN-GP, k = 5, G 5e-4, D 1e-4 (0.5, 0.9) (mnist_wgan_gp.py)",
        dict(_WGAN, lr_g=5e-4, ema=0.995),
        (500, 1000),
    ),
    "wgan-gp-g1e-3": Recipe(
        "DCGAN-28 WGAN-GP, k = 5, G 1e-3, D 1e-4 (0.5, 0.9)",
        dict(_WGAN, lr_g=1e-3, ema=0.995),
        (500, 1000),
    ),
}


def sweep(args: argparse.Namespace, images: np.ndarray) -> None:
    """Train every recipe in ``args.only`` from every seed in ``args.seeds``, scoring G and
    its EMA at the recipe's steps; each run's scores go to ``<out>/<recipe>-seed<k>/
    scores.json`` (``--report`` gathers them into a table).

    The run goes from one scoring step to the next by resuming its checkpoint, which is
    exact: the scores at step 2,000 of a 10,000-step run are those of a 2,000-step run.
    """
    for name in args.only:
        recipe = RECIPES[name]
        for seed in args.seeds:
            out = Path(args.out) / f"{name}-seed{seed}"
            records = []
            for at in recipe.score_at:
                config = MnistConfig(
                    **recipe.settings, steps=at, seed=seed, device="cpu", out=str(out),
                    sample_every=500, checkpoint_every=10**9, resume=bool(records),
                    overwrite=not records,  # a sweep replaces the same recipe's earlier run
                )  # fmt: skip
                run = train_config(config, images)
                z = run.streams.evaluation_noise(args.samples, config.z_dim)
                samplers = {"G": run.generator} | ({"EMA": ema_sampler(run)} if config.ema else {})
                seconds = run.history["seconds"][-1]
                for weights, sampler in samplers.items():
                    scores = metrics.score(generate_many(sampler, z))
                    records.append(
                        dict(recipe=name, seed=seed, step=at, weights=weights,
                             seconds=seconds, **scores.as_dict())
                    )  # fmt: skip
                    print(f"  {name}, seed {seed}, step {at}, {weights}: {scores.summary()}, "
                          f"{seconds / at:.3f} s/step", file=sys.stderr, flush=True)  # fmt: skip
            with atomic_write(out / "scores.json") as f:
                f.write(json.dumps(records, indent=1).encode())
    report(args)


def report(args: argparse.Namespace) -> None:
    """The table of every ``scores.json`` under ``args.out``: one row per recipe, step and
    weights, each score as mean ± sd (min-max) over the seeds."""
    groups: dict[tuple, list[dict]] = {}
    for path in sorted(Path(args.out).glob("*/scores.json")):
        for r in json.loads(path.read_text()):
            groups.setdefault((r["recipe"], r["step"], r["weights"]), []).append(r)
    print("| recipe | step | weights | seeds | s/step | FD ↓ | IS ↑ | classes ↑ | class KL ↓ "
          "| speckle ↓ |")  # fmt: skip
    print("|---|---:|---|---|---:|---|---|---|---|---|")
    order = list(RECIPES)
    for (name, step, weights), runs in sorted(
        groups.items(), key=lambda g: (order.index(g[0][0]), g[0][1:])
    ):
        cells = [_spread([r[key] for r in runs], digits)
                 for key, digits in (("fd", 0), ("inception_score", 2), ("classes", 1),
                                     ("class_kl", 3), ("speckle", 2))]  # fmt: skip
        seeds = ",".join(str(r["seed"]) for r in runs)
        per_step = np.mean([r["seconds"] / r["step"] for r in runs])
        print(f"| {RECIPES[name].label} | {step:,} | {weights} | {seeds} | {per_step:.3f} | "
              + " | ".join(cells) + " |")  # fmt: skip
    floor = metrics.real_floor()
    print(f"| real digits (floor) | | | | | {floor.fd:.0f} | {floor.inception_score:.2f} | "
          f"{floor.classes} | {floor.class_kl:.3f} | {floor.speckle:.2f} |")  # fmt: skip


def _spread(values: list[float], digits: int) -> str:
    """``mean ± sd (min-max)`` of the seeds' values (only the value for one seed)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    mean, sd, low, high = (f"{x:.{digits}f}" for x in (v.mean(), v.std(ddof=1), v.min(), v.max()))
    return f"{mean} ± {sd} ({low}-{high})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training time per model")
    parser.add_argument(
        "--samples", type=int, help="generated images scored (5,000; the sweep: 2,000, as "
        "the demos' --eval-every)"
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-steps", type=int, default=20, help="steps that time a step")
    parser.add_argument("--only", nargs="*", help="configurations (or recipes); default all")
    parser.add_argument("--out", default="runs/quality", help="folder of the runs")
    parser.add_argument("--sweep", action="store_true", help="the recipe sweep over --seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sweep seeds")
    parser.add_argument("--report", action="store_true", help="the sweep's table of --out")
    args = parser.parse_args()
    table = RECIPES if args.sweep else CONFIGS
    args.only = args.only or list(table)
    args.samples = args.samples or (2000 if args.sweep else 5000)
    unknown = [name for name in args.only if name not in table]
    if unknown:
        parser.error(f"unknown --only {unknown}; choose from {list(table)}")
    if args.probe_steps < 2:
        parser.error("--probe-steps must be at least 2: the first step is not timed")
    if args.report:
        report(args)
        return

    images, _ = data.load_mnist_or_bundled(download=False, log=print)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"{machine()}; this process may use {cores} core(s), "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}",
        flush=True,
    )
    if args.sweep:
        print(f"`{shlex.join(['python', *sys.argv])}`, {datetime.date.today().isoformat()}")
        sweep(args, images)
        return
    rows = []
    for name in args.only:
        settings, demo = CONFIGS[name]
        run = train_for(settings, 60.0 * args.minutes, images, args)
        wall = run.history["seconds"][-1]
        z = np.random.default_rng([args.seed, 99]).standard_normal(
            (args.samples, run.config.z_dim), dtype=np.float32
        )
        scores = metrics.score(generate_many(ema_sampler(run), z))  # what the demo draws with
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
