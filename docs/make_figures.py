"""Draw the figures of the guided tour, docs/figures/*.png and *.svg, with tinygan itself.

    python docs/make_figures.py            # about a minute on a 2-core CPU
    python docs/make_figures.py --graphs   # only the two graph figures, in a second
    python docs/make_figures.py --lab      # only chapter 11's, about 10 minutes

Every number in the figures is computed here with tinygan (its ops, losses, models and
training steps) and every picture is drawn with tinygan.utils.images (Pillow), except the
graphs, which tinygan.utils.graph.to_dot writes as DOT text and Graphviz's ``dot`` draws
(without ``dot`` on PATH, the .dot files are written instead, to render elsewhere):

* graph_expression.svg: the graph of chapter 1's small expression (chapter 1);
* graph_of_a_gradient.svg: the graph of WGAN-GP's penalty on a tiny critic, which the
  penalty's backward walks, the critic's own backward included (chapter 4);
* generator_gradients.png: |dL_G/df| per sample against D's logit f, for the saturating
  and the non-saturating generator loss (chapter 5);
* mode_collapse.png: a 1-D GAN with and without BatchNorm in its generator, the setup of
  tests/test_gan_toy.py; without it the generator collapses onto one mode (chapter 8);
* mnist_samples.png, mnist_losses.png, mnist_metrics.png: 1,500 steps of the MLP GAN of
  demos/mnist_gan.py on the bundled MNIST test set: sample grids at a few steps, the
  losses, and D's outputs with a sample-diversity ratio (chapter 8);
* lab_saturating.png, lab_hot.png, lab_fast_g.png: the diagnostics.png of each failing
  run of docs/11-lab.md, made by running that chapter's code (chapter 11; --lab only).

Everything is seeded, so a second run draws the same pictures.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import tinygan as tg
from tinygan import data, losses, models, optim
from tinygan.gan import LOSSES, d_step, g_step, generate
from tinygan.train import TrainConfig, make_optimizer
from tinygan.utils.diagnostics import diversity
from tinygan.utils.fileio import atomic_write
from tinygan.utils.graph import to_dot
from tinygan.utils.images import save_grid, save_loss_plot
from tinygan.utils.streams import RandomStreams

FIGURES = Path(__file__).resolve().parent / "figures"

MNIST_STEPS = 1500  # generator updates of the MNIST run
GRID_STEPS = (0, 50, 200, 500, 1000, 1500)  # the rows of mnist_samples.png
GRID_COLUMNS = 16  # samples per row (the first 16 of the run's grid noise)
METRICS_EVERY = 10  # steps between points of mnist_metrics.png
DIVERSITY_SAMPLES = 256


# --------------------------------------------------------------------- chapters 1 and 4
def graph_expression() -> Path:
    """The graph of y = sum(tanh(x * w + 1)), the expression of chapter 1's last section."""
    x = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    w = tg.tensor(np.array([0.5, -1.0]), requires_grad=True)
    y = (x * w + 1.0).tanh().sum()
    return _render(to_dot(y, names={"x": x, "w": w, "y": y}), FIGURES / "graph_expression.svg")


def graph_of_a_gradient() -> Path:
    """The graph of WGAN-GP's penalty, in the lines of losses.gradient_penalty (chapter 4).

    The critic is Linear(2, 3), LeakyReLU(0.2), Linear(3, 1) on a batch x_hat of 4 points;
    g = d critic(x_hat).sum() / d x_hat is taken with create_graph=True.
    """
    rng = np.random.default_rng(0)
    critic = tg.nn.Sequential(
        tg.nn.Linear(2, 3, rng=rng), tg.nn.LeakyReLU(0.2), tg.nn.Linear(3, 1, rng=rng)
    )
    x_hat = tg.tensor(rng.standard_normal((4, 2)), dtype="float32", requires_grad=True)
    (g,) = tg.grad(critic(x_hat).sum(), [x_hat], create_graph=True)
    squared_norm = (g * g).reshape(4, -1).sum(axis=1)  # (4,)
    norm = (squared_norm + losses.GP_SQRT_EPS).sqrt()
    penalty = 10.0 * ((norm - 1.0) ** 2).mean()
    names = dict(critic.named_parameters()) | {"x_hat": x_hat, "g": g, "penalty": penalty}
    return _render(to_dot(penalty, names=names), FIGURES / "graph_of_a_gradient.svg")


def _render(source: str, path: Path) -> Path:
    """Draw DOT source as an SVG with Graphviz; without ``dot``, write the .dot file instead."""
    dot = shutil.which("dot")
    if dot is None:
        path, content = path.with_suffix(".dot"), source.encode()
    else:
        drawn = subprocess.run([dot, "-Tsvg"], input=source.encode(), capture_output=True)
        if drawn.returncode != 0:
            raise RuntimeError(f"dot failed on {path.name}: {drawn.stderr.decode()}")
        content = drawn.stdout
    with atomic_write(path) as f:
        f.write(content)
    return path


# --------------------------------------------------------------------- chapter 5
def generator_gradients() -> None:
    """|dL_G/df| for one sample, both generator losses, by tinygan's own backward."""
    f = np.linspace(-8.0, 1.5, 191)  # D's logit on a generated sample (the legend sits top right)
    curves = {}
    for name, saturating in (
        ("saturating: L = log(1 - D(G(z))), |dL/df| = D(G(z))", True),
        ("non-saturating: L = -log D(G(z)), |dL/df| = 1 - D(G(z))", False),
    ):
        logits = tg.tensor(f, requires_grad=True)  # float64 in, float64 kept
        # gan_g_loss is a mean over the batch: times n, each entry is one sample's gradient.
        (g,) = tg.grad(losses.gan_g_loss(logits, saturating=saturating) * len(f), [logits])
        curves[name] = np.abs(g.numpy())
    save_loss_plot(
        curves,
        FIGURES / "generator_gradients.png",
        title="How hard each generator loss pushes a fake that D rejects (f << 0)",
        steps=f,
        smooth=0,
        xlabel="f = D's logit on a generated sample   (D(G(z)) = sigmoid(f))",
        ylabel="|dL_G / df| per sample",
    )


# --------------------------------------------------------------------- chapter 8: toy
TOY_MODES, TOY_STD = (-2.0, 2.0), 0.25


def _toy_data(rng: np.random.Generator, n: int) -> np.ndarray:
    centres = rng.choice(TOY_MODES, size=(n, 1))
    return (centres + TOY_STD * rng.standard_normal((n, 1))).astype(np.float32)


def train_toy_lsgan(g_batch_norm: bool, seed: int = 0, steps: int = 1500) -> np.ndarray:
    """tests/test_gan_toy.py's LSGAN run; returns 10,000 samples of the trained generator."""
    rng = np.random.default_rng(seed)
    generator = models.mlp([4, 32, 32, 1], batch_norm=g_batch_norm, rng=rng)
    discriminator = models.mlp([1, 32, 32, 1], batch_norm=False, rng=rng)
    opt_g = optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = optim.Adam(discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for step in range(steps):
        opt_g.lr = opt_d.lr = 1e-3 * (1.0 - step / steps)
        real = tg.tensor(_toy_data(rng, 256))
        fake = generator(tg.tensor(rng.standard_normal((256, 4)), dtype="float32"))
        d_step(discriminator, opt_d, losses.lsgan_d_loss, real, fake.detach())
        g_step(discriminator, opt_g, losses.lsgan_g_loss, fake)
    generator.eval()
    with tg.no_grad():
        z = tg.tensor(rng.standard_normal((10_000, 4)), dtype="float32")
        return generator(z).numpy().reshape(-1)


def mode_collapse() -> None:
    """Histograms of the data and of two trained generators, one of them collapsed."""
    edges = np.linspace(-4.0, 4.0, 161)
    centres = (edges[:-1] + edges[1:]) / 2
    pdf = sum(
        0.5 * np.exp(-0.5 * ((centres - m) / TOY_STD) ** 2) / (TOY_STD * math.sqrt(2 * math.pi))
        for m in TOY_MODES
    )
    curves = {"data: N(-2, 0.25^2) and N(2, 0.25^2), equal weight": pdf}
    for label, batch_norm in (("G with BatchNorm", True), ("G without BatchNorm", False)):
        samples = train_toy_lsgan(batch_norm)
        left = float(np.mean(samples < 0))
        density, _ = np.histogram(samples, bins=edges, density=True)
        curves[f"{label}: {left:.0%} of samples left of 0"] = density
    save_loss_plot(
        curves,
        FIGURES / "mode_collapse.png",
        title="Mode collapse: the same LSGAN, seed 0, 1,500 steps (tests/test_gan_toy.py)",
        steps=centres,
        smooth=0,
        xlabel="x",
        ylabel="density",
    )


# --------------------------------------------------------------------- chapter 8: MNIST
def mnist_run() -> None:
    """Train demos/mnist_gan.py's MLP GAN for a while; draw samples, losses and metrics.

    The loop is that of ``tinygan.train.train`` (k = 1), written out here to look at G
    between steps; it writes no files (``train`` would): the figures are all this run leaves.
    """
    images, _ = data.load_mnist("test", root=data.bundled_dataset_dir("mnist"), download=False)
    config = TrainConfig(
        loss="gan", z_dim=96, batch_size=128, lr_g=1e-3, lr_d=1e-3, steps=MNIST_STEPS,
        device="cpu", seed=0,
    )  # fmt: skip
    family = LOSSES[config.loss]
    generator, discriminator = models.mnist_models("mlp", config.z_dim, seed=config.seed)
    opt_g = make_optimizer(generator.parameters(), config.lr_g, config)
    opt_d = make_optimizer(discriminator.parameters(), config.lr_d, config)
    loader = data.BatchLoader(images, config.batch_size, seed=config.seed)
    streams = RandomStreams(config.seed)

    grid_noise = tg.tensor(streams.grid_noise(64, config.z_dim)[:GRID_COLUMNS])
    z = np.random.default_rng(1).standard_normal((DIVERSITY_SAMPLES, config.z_dim))
    diversity_noise = tg.tensor(z, dtype="float32")
    real_diversity = diversity(data.images_to_float(images[:DIVERSITY_SAMPLES]))

    grids = {0: generate(generator, grid_noise)}
    history = {name: [] for name in ("d_loss", "g_loss", "d_real", "d_fake")}
    metric_steps, d_real, d_fake, diversities = [], [], [], []
    start = time.perf_counter()
    for step in range(1, MNIST_STEPS + 1):
        real = tg.tensor(loader.batch(step))
        fake = generator(tg.tensor(streams.noise(step, config.batch_size, config.z_dim)))
        d = d_step(discriminator, opt_d, family.d_loss, real, fake.detach())
        g_loss = g_step(discriminator, opt_g, family.g_loss, fake)
        values = d.summary(family.logits) | {"g_loss": g_loss.item()}
        for name in history:
            history[name].append(values[name])
        if step in GRID_STEPS:
            grids[step] = generate(generator, grid_noise)
        if step % METRICS_EVERY == 0:
            metric_steps.append(step)
            d_real.append(float(np.mean(history["d_real"][-METRICS_EVERY:])))
            d_fake.append(float(np.mean(history["d_fake"][-METRICS_EVERY:])))
            fakes = generate(generator, diversity_noise)
            diversities.append(diversity(fakes) / real_diversity)
        if step % 100 == 0:
            print(f"  MNIST GAN step {step}/{MNIST_STEPS}, {time.perf_counter() - start:.0f} s")

    steps = np.arange(1, MNIST_STEPS + 1)
    save_loss_plot(
        {
            "D loss": history["d_loss"],
            "G loss (non-saturating)": history["g_loss"],
            "2 log 2: D's loss when D(x) = 1/2 everywhere": np.full(len(steps), 2 * math.log(2)),
            "log 2: G's loss when D(G(z)) = 1/2": np.full(len(steps), math.log(2)),
        },
        FIGURES / "mnist_losses.png",
        title="MLP GAN on MNIST (demos/mnist_gan.py settings, batch 128)",
        steps=steps,
    )
    save_loss_plot(
        {
            "D(x): mean D output on real images": d_real,
            "D(G(z)): mean D output on generated images": d_fake,
            "diversity: mean distance between samples / between real images": diversities,
        },
        FIGURES / "mnist_metrics.png",
        title=f"What D says, and how varied the samples are (every {METRICS_EVERY} steps)",
        steps=metric_steps,
        smooth=0,
        ylabel="value",
        legend="lower right",  # the diversity curve climbs into the upper right
    )
    _labelled_rows(grids, FIGURES / "mnist_samples.png")


# --------------------------------------------------------------------- chapter 11
def lab_figures() -> None:
    """Run the python blocks of docs/11-lab.md (its failing runs, 1,500 steps each) in a
    temporary folder, and keep each run's diagnostics.png as figures/lab_<run>.png.
    """
    chapter = Path(__file__).resolve().parent / "11-lab.md"
    blocks = re.findall(r"```python\n(.*?)```", chapter.read_text(encoding="utf-8"), re.S)
    here = Path.cwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)  # the lab writes runs/lab/<run>/ where it runs
        try:
            namespace: dict = {"__name__": "__lab__"}
            for code in blocks:
                exec(code, namespace)
        finally:
            os.chdir(here)
        for run in sorted((Path(folder) / "runs" / "lab").iterdir()):
            name = f"lab_{run.name.replace('-', '_')}.png"
            shutil.copyfile(run / "diagnostics.png", FIGURES / name)


def _labelled_rows(grids: dict[int, np.ndarray], path: Path, scale: int = 2) -> None:
    """One row per step (the same noise in every column), with the step written on the left."""
    steps = sorted(grids)
    batch = np.concatenate([grids[s] for s in steps])  # (rows * columns, 1, 28, 28)
    with tempfile.TemporaryDirectory() as folder:
        grid_path = Path(folder) / "grid.png"
        save_grid(batch, grid_path, nrow=GRID_COLUMNS, padding=2, pad_value=1.0)
        with Image.open(grid_path) as opened:
            grid = opened.convert("L")
    grid = grid.resize((grid.width * scale, grid.height * scale), Image.Resampling.NEAREST)
    margin = 110
    canvas = Image.new("L", (grid.width + margin, grid.height), 255)
    canvas.paste(grid, (margin, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=18)
    row_height = (grid.height - 2 * scale) / len(steps)
    for i, step in enumerate(steps):
        centre = 2 * scale + row_height * (i + 0.5)
        draw.text((margin - 12, centre), f"step {step}", fill=0, font=font, anchor="rm")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graphs", action="store_true", help="draw only the graph figures")
    parser.add_argument("--lab", action="store_true", help="draw only chapter 11's figures")
    args = parser.parse_args()
    graphs_only = args.graphs
    FIGURES.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.lab:
        lab_figures()
        print(f"lab_*.png ({time.perf_counter() - start:.0f} s)")
        return
    for path in (graph_expression(), graph_of_a_gradient()):
        print(f"{path.name} ({time.perf_counter() - start:.0f} s)")
        if path.suffix == ".dot":
            print("  Graphviz's dot is not on PATH: render it with dot -Tsvg, or install graphviz")
    if graphs_only:
        return
    generator_gradients()
    print(f"generator_gradients.png ({time.perf_counter() - start:.0f} s)")
    mode_collapse()
    print(f"mode_collapse.png ({time.perf_counter() - start:.0f} s)")
    mnist_run()
    print(f"mnist_samples.png, _losses.png, _metrics.png ({time.perf_counter() - start:.0f} s)")
    for path in sorted([*FIGURES.glob("*.png"), *FIGURES.glob("*.svg")]):
        print(f"  {path.relative_to(FIGURES.parent.parent)}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
