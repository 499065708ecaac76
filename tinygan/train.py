"""The GAN training loop: one trainer for GAN, LSGAN and WGAN-GP, with exact resume.

One training step is ``d_steps`` discriminator (critic) updates followed by one generator
update::

    for j in 1..k:   x ~ data, z_j ~ N(0, I)
                     D <- D - grad_D [ loss_D(D(x), D(G(z_j))) (+ gradient penalty) ]
    G <- G - grad_G [ loss_G(D(G(z_k))) ]

The generator step reuses the fakes G(z_k) of the last discriminator step (their graph
is kept; the discriminator saw them detached), as PyTorch's DCGAN example does: one
generator forward pass fewer per step.

Everything random in step s is a pure function of ``(seed, s)``: the real batches come
from :class:`~tinygan.data.BatchLoader` by step number, the noise from
``default_rng([seed, s + 1, j])`` (``s + 1`` because ``-1`` names the fixed noise of the
sample grids). A checkpoint therefore holds only the weights, the optimizer
moments, BatchNorm's running statistics, the step and the loss history, and a resumed run
ends with exactly the weights of an uninterrupted one.

The generator's update differentiates with ``tinygan.grad(loss_G, G.parameters())``, not
``backward()``: the walk then skips the discriminator's weight gradients, which the
generator step does not need (PyTorch's usual loop computes and throws them away).

A run writes into its output folder: ``config.json``, ``samples/step_XXXXXX.png`` (a grid
from a fixed noise batch), ``losses.csv`` and ``losses.png``, and ``checkpoint.npz``; with
``eval_every`` set, also ``metrics.csv``: the sample-quality scores of
:mod:`tinygan.metrics` (Fréchet distance, inception-style score, class coverage, all from
an MNIST classifier, so meaningful for MNIST digits only).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from tinygan import losses, metrics
from tinygan.autograd import grad, no_grad
from tinygan.backend import cuda_available, normalize_device
from tinygan.checkpoint import load_checkpoint, save_checkpoint
from tinygan.cli import require_choice, require_positive
from tinygan.data import BatchLoader
from tinygan.fileio import atomic_write
from tinygan.images import save_grid, save_loss_plot, save_strip
from tinygan.nn import Module
from tinygan.optim import SGD, Adam, Optimizer
from tinygan.progress import Progress
from tinygan.tensor import Tensor

LOSSES = ("gan", "lsgan", "wgan-gp")
HISTORY = ("step", "d_loss", "g_loss", "d_real", "d_fake", "penalty", "seconds")
# Fields that may change between a run and its resumption without changing the result.
_RESUMABLE_CHANGES = {
    "steps",
    "resume",
    "device",
    "log_every",
    "sample_every",
    "checkpoint_every",
    "eval_every",
}


@dataclass
class TrainConfig:
    """Everything that defines a training run (the demos turn each field into a flag).

    Attributes:
        loss: "gan" (binary cross-entropy), "lsgan" (least squares) or "wgan-gp".
        saturating: for "gan", train G with the original log(1 - D(G(z))) loss.
        steps: generator updates in the whole run.
        batch_size: real and fake images per discriminator update.
        z_dim: size of the noise vector.
        optimizer: "adam" or "sgd" (SGD with momentum).
        lr_g, lr_d: learning rates of generator and discriminator.
        beta1, beta2: Adam's betas.
        momentum: SGD's momentum.
        d_steps: discriminator (critic) updates per generator update (k, n_critic).
        gp_weight: weight of WGAN-GP's gradient penalty.
        seed: seeds weights, noise and batch order.
        device: "auto" (the GPU when there is one), "cpu" or "cuda".
        out: the run's output folder.
        sample_every, checkpoint_every: steps between sample grids / checkpoints.
        log_every: steps between log lines when output is not a terminal.
        eval_every: steps between sample-quality scores of 2,000 generated images
            (tinygan.metrics: Fréchet distance, inception-style score, class coverage;
            MNIST only), written to metrics.csv and the progress output; 0: never.
        resume: continue from ``out/checkpoint.npz``.
    """

    loss: str = "lsgan"
    saturating: bool = False
    steps: int = 2000
    batch_size: int = 64
    z_dim: int = 100
    optimizer: str = "adam"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    momentum: float = 0.9
    d_steps: int = 1
    gp_weight: float = 10.0
    seed: int = 0
    device: str = "auto"
    out: str = "runs/gan"
    sample_every: int = 250
    checkpoint_every: int = 500
    log_every: int = 50
    eval_every: int = 0
    resume: bool = False

    def __post_init__(self) -> None:
        require_choice("loss", self.loss, LOSSES)
        require_choice("optimizer", self.optimizer, ("adam", "sgd"))
        require_positive(self, "steps", "batch_size", "z_dim", "d_steps")
        if self.device != "auto":
            normalize_device(self.device)


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is usable, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return normalize_device(device)


def make_optimizer(params: Any, lr: float, config: TrainConfig) -> Optimizer:
    """Adam(lr, (beta1, beta2)) or SGD(lr, momentum), as the config says."""
    if config.optimizer == "adam":
        return Adam(params, lr=lr, betas=(config.beta1, config.beta2))
    return SGD(params, lr=lr, momentum=config.momentum)


def _mean(t: Tensor) -> float:
    return float(t.data.mean())


class GANTrainer:
    """Trains a generator against a discriminator on a stream of real batches.

    Attributes:
        eval_samples: generated images scored at each ``eval_every`` evaluation.

    Args:
        generator: maps (N, z_dim) noise to (N, C, H, W) images in [-1, 1].
        discriminator: maps images to (N, 1) scores.
        loader: the real images (its batch size is used).
        config: the run's settings.
        stream: where progress and messages go (default sys.stdout); the demos print,
            the library itself does not.
    """

    eval_samples = 2000

    def __init__(
        self,
        generator: Module,
        discriminator: Module,
        loader: BatchLoader,
        config: TrainConfig,
        stream: TextIO | None = None,
    ) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.generator = generator.to(self.device).train()
        self.discriminator = discriminator.to(self.device).train()
        self.loader = loader
        self.opt_g = make_optimizer(self.generator.parameters(), config.lr_g, config)
        self.opt_d = make_optimizer(self.discriminator.parameters(), config.lr_d, config)
        self.out = Path(config.out)
        self.stream = stream
        self.step = 0
        self.history: dict[str, list[float]] = {name: [] for name in HISTORY}
        self.metrics_history: list[dict[str, float]] = []  # one row per evaluation
        self.fixed_noise = self.noise(64, -1)  # the same 64 faces of the run in every grid

    # --------------------------------------------------------------------------- pieces
    def noise(self, n: int, step: int, j: int = 0) -> Tensor:
        """Standard normal noise (n, z_dim), a pure function of (seed, step, j)."""
        rng = np.random.default_rng([self.config.seed, step + 1, j])
        z = rng.standard_normal((n, self.config.z_dim), dtype=np.float32)
        return Tensor(z).to(self.device)

    def real_batch(self, index: int) -> Tensor:
        return Tensor(self.loader.batch(index)).to(self.device)

    def _d_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        if self.config.loss == "gan":
            return losses.gan_d_loss(real_scores, fake_scores)
        if self.config.loss == "lsgan":
            return losses.lsgan_d_loss(real_scores, fake_scores)
        return losses.wgan_d_loss(real_scores, fake_scores)

    def _g_loss(self, fake_scores: Tensor) -> Tensor:
        if self.config.loss == "gan":
            return losses.gan_g_loss(fake_scores, saturating=self.config.saturating)
        if self.config.loss == "lsgan":
            return losses.lsgan_g_loss(fake_scores)
        return losses.wgan_g_loss(fake_scores)

    def _score(self, scores: Tensor) -> float:
        """Mean D output as logged: a probability for the GAN loss, else the raw score."""
        if self.config.loss == "gan":
            return float((0.5 * (np.tanh(0.5 * scores.numpy()) + 1.0)).mean())
        return _mean(scores)

    @staticmethod
    def _update(loss: Tensor, module: Module, optimizer: Optimizer) -> None:
        """Set each parameter's .grad to d loss / d parameter (no other gradient) and step."""
        params = list(module.parameters())
        for p, g in zip(params, grad(loss, params, allow_unused=True)):
            p.grad = g
        optimizer.step()

    def train_step(self) -> dict[str, float]:
        """One generator step and its ``d_steps`` discriminator steps; returns the losses."""
        config, s, k = self.config, self.step, self.config.d_steps
        batch = self.loader.batch_size
        G, D = self.generator, self.discriminator
        for j in range(k):
            real = self.real_batch(s * k + j)
            z = self.noise(batch, s, j)
            if j < k - 1:
                with no_grad():
                    fake = G(z)
            else:  # the last D step shares its fakes with the G step, as in PyTorch's DCGAN
                fake_for_g = G(z)
                fake = fake_for_g.detach()
            real_scores, fake_scores = D(real), D(fake)
            d_loss = self._d_loss(real_scores, fake_scores)
            penalty = 0.0
            if config.loss == "wgan-gp":
                rng = np.random.default_rng([config.seed, s + 1, j, 7])
                gp = losses.gradient_penalty(D, real, fake, weight=config.gp_weight, rng=rng)
                penalty = float(gp.data)
                d_loss = d_loss + gp
            self._update(d_loss, D, self.opt_d)
        g_loss = self._g_loss(D(fake_for_g))
        self._update(g_loss, G, self.opt_g)
        self.step += 1
        return {
            "d_loss": float(d_loss.data),
            "g_loss": float(g_loss.data),
            "d_real": self._score(real_scores),
            "d_fake": self._score(fake_scores),
            "penalty": penalty,
        }

    # ----------------------------------------------------------------------- the run
    def train(self) -> dict[str, float]:
        """Run (or resume) up to ``config.steps`` steps, writing samples, logs, checkpoints.

        Ctrl-C saves a checkpoint of the last finished step before the KeyboardInterrupt
        goes on, so ``resume=True`` continues from there.

        Returns:
            The last step's losses.
        """
        config = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        if config.resume:
            self.resume()
        self._write_config()
        progress = Progress(config.steps, self.step, self.stream, config.log_every)
        seconds_before = self.history["seconds"][-1] if self.history["seconds"] else 0.0
        progress.message(
            f"training {config.loss} on {self.device} for {config.steps} steps "
            f"(from step {self.step}); output in {self.out.resolve()}"
        )
        values: dict[str, float] = {}
        try:
            while self.step < config.steps:
                values = self.train_step()
                values["seconds"] = seconds_before + progress.elapsed()
                self._record(values)
                progress.update(self.step, {k: values[k] for k in ("d_loss", "g_loss")})
                if self.step % config.sample_every == 0 or self.step == config.steps:
                    self.write_samples()
                if self.step % config.checkpoint_every == 0 or self.step == config.steps:
                    self.save()
                if config.eval_every and (
                    self.step % config.eval_every == 0 or self.step == config.steps
                ):
                    progress.message(f"step {self.step} quality: {self.evaluate().summary()}")
        except KeyboardInterrupt:
            self.save()
            progress.message(
                f"\ninterrupted: checkpoint of step {self.step} saved in {self.checkpoint_path}; "
                "run again with --resume to continue"
            )
            raise
        progress.message(
            f"done: {self.step} steps in {values.get('seconds', 0.0):.0f} s; samples in "
            f"{(self.out / 'samples').resolve()}, losses in {(self.out / 'losses.png').resolve()}"
        )
        return values

    def _record(self, values: dict[str, float]) -> None:
        self.history["step"].append(float(self.step))
        for name in HISTORY[1:]:
            self.history[name].append(values[name])

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.npz"

    def save(self) -> None:
        """Write ``checkpoint.npz``, ``losses.csv`` and ``losses.png`` (atomically)."""
        history = {f"history_{k}": np.asarray(v, dtype=np.float64) for k, v in self.history.items()}
        save_checkpoint(
            self.checkpoint_path,
            generator=self.generator,
            discriminator=self.discriminator,
            opt_g=self.opt_g,
            opt_d=self.opt_d,
            step=self.step,
            **history,
        )
        self._write_losses()

    def resume(self) -> None:
        """Load ``checkpoint.npz`` of the output folder (a fresh start when there is none)."""
        if not self.checkpoint_path.exists():
            return
        self._check_config_matches()
        extras = load_checkpoint(
            self.checkpoint_path,
            generator=self.generator,
            discriminator=self.discriminator,
            opt_g=self.opt_g,
            opt_d=self.opt_d,
        )
        self.step = int(extras["step"])
        self.history = {k: list(map(float, extras[f"history_{k}"])) for k in HISTORY}
        if self.metrics_path.exists():  # keep the evaluations up to the checkpoint's step
            with open(self.metrics_path, newline="") as f:
                rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
            self.metrics_history = [row for row in rows if row["step"] <= self.step]

    def _check_config_matches(self) -> None:
        path = self.out / "config.json"
        if not path.exists():
            return
        before = json.loads(path.read_text())
        now = asdict(self.config)
        changed = [k for k in now if k not in _RESUMABLE_CHANGES and before.get(k) != now[k]]
        if changed:
            details = ", ".join(f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in changed)
            raise ValueError(
                f"--resume: the settings differ from the run in {self.out} ({details}); "
                "use the same settings, or another --out folder"
            )

    def _write_config(self) -> None:
        with atomic_write(self.out / "config.json") as f:
            f.write(json.dumps(asdict(self.config), indent=2).encode() + b"\n")

    def _write_losses(self) -> None:
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(HISTORY)
        for row in zip(*(self.history[k] for k in HISTORY)):
            writer.writerow([int(row[0]), *(f"{v:.6g}" for v in row[1:])])
        with atomic_write(self.out / "losses.csv") as f:
            f.write(text.getvalue().encode())
        if self.history["step"]:
            curves = {"D loss": self.history["d_loss"], "G loss": self.history["g_loss"]}
            title = f"{self.config.loss} losses"
            save_loss_plot(curves, self.out / "losses.png", title=title, steps=self.history["step"])

    @property
    def metrics_path(self) -> Path:
        return self.out / "metrics.csv"

    def evaluate(self) -> metrics.QualityScores:
        """Score ``eval_samples`` generated images; append them to ``metrics.csv``.

        The noise is the same at every evaluation (a stream that no training step draws
        from), so the scores of a run follow the generator, not the noise; generating
        in eval mode leaves the training exactly as it would be without evaluations.
        """
        rng = np.random.default_rng([self.config.seed, 0, 0, 1])
        z = rng.standard_normal((self.eval_samples, self.config.z_dim), dtype=np.float32)
        scores = metrics.score(generate_many(self.generator, z, self.device))
        self.metrics_history.append({"step": float(self.step), **scores.as_dict()})
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(self.metrics_history[0]))
        writer.writeheader()
        for row in self.metrics_history:
            writer.writerow({k: f"{v:.6g}" for k, v in row.items()})
        with atomic_write(self.metrics_path) as f:
            f.write(text.getvalue().encode())
        return scores

    def write_samples(self) -> Path:
        """Save the fixed-noise grid of the current step (generator in eval mode)."""
        path = self.out / "samples" / f"step_{self.step:06d}.png"
        save_grid(generate(self.generator, self.fixed_noise), path, nrow=8)
        return path


def generate(generator: Module, z: Tensor) -> np.ndarray:
    """Images from noise ``z`` with the generator in eval mode (BatchNorm's running stats).

    Leaves the generator in the mode it was in.
    """
    was_training = generator.training
    generator.eval()
    try:
        with no_grad():
            return generator(z).numpy()
    finally:
        generator.train(was_training)


def generate_many(
    generator: Module, z: np.ndarray, device: str = "cpu", batch_size: int = 250
) -> np.ndarray:
    """:func:`generate` for many noise vectors (N, z_dim), ``batch_size`` at a time.

    Batches keep the memory small (a transposed convolution's columns grow with the
    batch); the result is a NumPy array (N, C, H, W).
    """
    parts = [
        generate(generator, Tensor(z[start : start + batch_size]).to(device))
        for start in range(0, len(z), batch_size)
    ]
    return np.concatenate(parts)


def interpolation_noise(z_dim: int, steps: int, seed: int, device: str = "cpu") -> Tensor:
    """``steps`` noise vectors on the straight line between two random ones."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((2, z_dim), dtype=np.float32)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return Tensor((1.0 - t) * a + t * b).to(device)


def sample_from_checkpoint(
    generator: Module,
    checkpoint: str | Path,
    out: str | Path,
    z_dim: int,
    seed: int = 0,
    n: int = 64,
    device: str = "auto",
    log: Callable[[str], None] | None = None,
) -> tuple[Path, Path]:
    """Load a generator from a training checkpoint; write a sample grid and an interpolation.

    Returns:
        The paths of ``samples.png`` and ``interpolation.png`` in ``out``.
    """
    device = resolve_device(device)
    load_checkpoint(checkpoint, generator=generator)
    generator.to(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    z = Tensor(rng.standard_normal((n, z_dim), dtype=np.float32)).to(device)
    grid_path, strip_path = out / "samples.png", out / "interpolation.png"
    save_grid(generate(generator, z), grid_path, nrow=8)
    save_strip(generate(generator, interpolation_noise(z_dim, 10, seed, device)), strip_path)
    if log is not None:
        log(f"wrote {grid_path.resolve()} and {strip_path.resolve()}")
    return grid_path, strip_path
