"""Does an EMA of the generator's weights help, and what should BatchNorm's buffers be?

    OPENBLAS_NUM_THREADS=1 python benchmarks/ema_check.py                 # both models
    OPENBLAS_NUM_THREADS=1 python benchmarks/ema_check.py --model mlp --steps 1500

Trains a generator with the non-saturating GAN loss (tinygan.gan.d_step / g_step) on the
demos' MNIST (the training set if it is on disk, else the 10,000 bundled images), keeps
tinygan.ema.EMA averages of its weights at several decays beside training, and at each
``--eval-every`` step scores ``--samples`` generated images with tinygan.metrics.score (the
same evaluation noise for every variant):

* ``G``: the live generator (eval mode: its own running BatchNorm statistics);
* ``EMA copy``: the averaged weights with the live model's running statistics (what
  ``EMA.update`` leaves);
* ``EMA average``: the averaged weights with running statistics averaged like the weights
  (kept here, in the script, to measure the third treatment the library does not offer);
* ``EMA recompute``: the averaged weights with statistics measured on them
  (``EMA.recompute_batchnorm`` on ``--recompute-batches`` noise batches of 250);
* ``G recompute``: the live weights with recomputed statistics (separates the effect of
  the statistics from that of the averaging).

A model without BatchNorm (the MLP) gets the ``G`` and ``EMA`` rows only. Models:
``mlp`` is demos/mnist_gan.py (MLP 96-1024-1024-784, Adam(1e-3, (0.5, 0.999)), batch 128);
``dcgan`` is demos/mnist_dcgan.py (DCGAN-28 with BatchNorm in G, Adam(2e-4, (0.5, 0.999)),
batch 64). Prints a markdown table per model; one seed per run (``--seed``).

Results (seed 0, 2,000 samples, the bundled 10,000 digits, OPENBLAS_NUM_THREADS=1;
real-vs-real floor FD 5.3, speckle 0.09), FD / speckle:

    python benchmarks/ema_check.py --model mlp --steps 5000 --eval-every 1000

    step   G            EMA 0.99     EMA 0.995    EMA 0.999
    1000   1075 / 5.1   1311 / 1.9   1724 / 1.6   2331 / 0.6
    1500    902 / 4.1    717 / 1.5    833 / 1.3   2080 / 0.8   (default run: 1,500 steps)
    3000    377 / 4.6    300 / 2.2    276 / 2.0    491 / 1.4
    5000    220 / 4.7    157 / 2.9    134 / 2.4    133 / 1.2

    python benchmarks/ema_check.py --model dcgan --steps 1500 --eval-every 500

    step   G     G recompute   EMA 0.99 copy / average / recompute   EMA 0.999 copy / avg / rec
    500    520   519           577 / 588 / 548                        2555 / 2715 / 2211
    1000   357   355           373 / 365 / 363                        1384 / 2433 /  847
    1500   289   288           302 / 301 / 301                         566 / 1648 /  426

and with ``--steps 400 --eval-every 200 --decays 0.99 0.995``, at step 400: G 595, EMA 0.99
copy 701 / average 801 / recompute 639, EMA 0.995 1169 / 2044 / 910. The MLP's average
beats the live generator once its fast early progress is over, and halves the speckle; a
decay whose 1/(1 - decay) is not small against the steps done lags behind. DCGAN-28's
average never beat the live generator within 1,500 steps; of the BatchNorm treatments,
recomputing was never worse and much better when the average is far from the live weights.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

from benchmarks.common import machine  # noqa: E402
from tinygan import data, losses, metrics, models  # noqa: E402
from tinygan.ema import EMA, recompute_batchnorm  # noqa: E402
from tinygan.gan import d_step, g_step, generate_many  # noqa: E402
from tinygan.optim import Adam  # noqa: E402
from tinygan.tensor import Tensor  # noqa: E402
from tinygan.utils.streams import RandomStreams  # noqa: E402

SETTINGS = {  # model -> (z_dim, batch size, learning rate, default steps)
    "mlp": (96, 128, 1e-3, 1500),
    "dcgan": (100, 64, 2e-4, 400),
}
RECOMPUTE_BATCH = 250
RECOMPUTE_STREAM = 100  # this script's own random stream, apart from tinygan.utils.streams' ids


def is_buffer_of_statistics(key: str) -> bool:
    return key.endswith(("running_mean", "running_var"))


def check(model_name: str, steps: int, decays: list[float], args) -> list[tuple]:
    """Train one model for ``steps`` steps; return rows (step, variant, QualityScores)."""
    z_dim, batch, lr, _ = SETTINGS[model_name]
    G, D = models.mnist_models(model_name, z_dim, seed=args.seed)
    G.train(), D.train()
    streams = RandomStreams(args.seed)
    images = data.load_training_images("mnist", download=False, log=print)
    loader = data.BatchLoader(images, batch, seed=args.seed)
    opt_g = Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    emas = {decay: EMA(G, decay) for decay in decays}
    statistics = [k for k in G.state_dict() if is_buffer_of_statistics(k)]
    initial = G.state_dict()
    averaged_stats = {d: {k: initial[k].copy() for k in statistics} for d in decays}
    z_eval = streams.evaluation_noise(args.samples, z_dim)
    recompute_noise = [
        streams.rng(RECOMPUTE_STREAM, i).standard_normal((RECOMPUTE_BATCH, z_dim), dtype=np.float32)
        for i in range(args.recompute_batches)
    ]
    rows, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        real = Tensor(loader.batch(step))
        fake = G(Tensor(streams.noise(step, batch, z_dim)))
        d_step(D, opt_d, losses.gan_d_loss, real, fake.detach())
        g_step(D, opt_g, losses.gan_g_loss, fake)
        live = G.state_dict() if statistics else {}
        for decay, ema in emas.items():
            ema.update()
            for k, avg in averaged_stats[decay].items():
                avg -= (1.0 - decay) * (avg - live[k])
        if step % args.eval_every == 0 or step == steps:
            minutes = (time.perf_counter() - start) / 60
            print(f"{model_name} step {step} ({minutes:.1f} min): scoring", flush=True)
            for variant, generator in variants(G, emas, averaged_stats, recompute_noise):
                s = metrics.score(generate_many(generator, z_eval))
                rows.append((step, variant, s))
                print(f"  {variant:<24} {s.summary()}", flush=True)
    return rows


def variants(G, emas: dict, averaged_stats: dict, noise: list) -> list[tuple[str, object]]:
    """(name, generator) of every variant to score (see the module docstring)."""
    if not any(averaged_stats.values()):  # no BatchNorm
        return [("G", G)] + [(f"EMA {decay}", ema.model) for decay, ema in emas.items()]
    g_recomputed = copy.deepcopy(G)
    recompute_batchnorm(g_recomputed, noise)
    out = [("G", G), ("G recompute", g_recomputed)]
    for decay, ema in emas.items():
        averaged = copy.deepcopy(ema.model)
        averaged.load_state_dict(averaged_stats[decay], strict=False)
        recomputed = copy.deepcopy(ema.model)  # the EMA itself stays as update() left it
        recompute_batchnorm(recomputed, noise)
        out += [
            (f"EMA {decay} copy", ema.model),
            (f"EMA {decay} average", averaged),
            (f"EMA {decay} recompute", recomputed),
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["mlp", "dcgan", "both"], default="both")
    parser.add_argument("--steps", type=int, default=0, help="0: 1500 (mlp), 400 (dcgan)")
    parser.add_argument("--decays", type=float, nargs="+", default=[0.99, 0.995, 0.999])
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--recompute-batches", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine())
    floor = metrics.real_floor()
    print(f"real-vs-real floor: {floor.summary()}")
    names = ["mlp", "dcgan"] if args.model == "both" else [args.model]
    for name in names:
        steps = args.steps or SETTINGS[name][3]
        rows = check(name, steps, args.decays, args)
        print(f"\n{name}, {steps} steps, seed {args.seed}, {args.samples} samples\n")
        print("| step | weights | FD | IS | classes | speckle |")
        print("|---:|---|---:|---:|---:|---:|")
        for step, variant, s in rows:
            print(
                f"| {step} | {variant} | {s.fd:.1f} | {s.inception_score:.2f} | {s.classes} "
                f"| {s.speckle:.2f} |"
            )


if __name__ == "__main__":
    main()
