"""A training run's folder: settings, progress, sample grids, losses, checkpoints, resume.

A training loop owns the algorithm; a :class:`Run` keeps its records, called from the loop
between steps::

    run = Run(config, G, D, opt_g, opt_d, stream=sys.stdout)
    for step in run.steps():          # resumes after the checkpoint's step when asked
        ...                           # one discriminator and one generator update
        run.log(step, d_loss=..., g_loss=...)
        if run.due(step, config.sample_every):
            run.save_samples(step)
        ...

The folder ``config.out`` holds ``config.json`` (the settings), ``samples/step_XXXXXX.png``
(a grid from a fixed noise batch), ``losses.csv`` and ``losses.png``, ``checkpoint.npz``
(weights, optimizer moments, BatchNorm statistics, the step and the loss history: all a
resumed run needs, since every random number is a pure function of the seed and the step,
see :mod:`tinygan.utils.streams`) and, with evaluations, ``metrics.csv``.

Ctrl-C (SIGINT) and SIGTERM do not cut a step in half: they are noted, the step finishes,
a checkpoint of it is written, and the process exits (status 130 or 143), so ``--resume``
continues exactly as if nothing had happened.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from tinygan import metrics
from tinygan.backend import normalize_device
from tinygan.checkpoint import load_checkpoint, save_checkpoint
from tinygan.gan import generate, generate_many
from tinygan.nn import Module
from tinygan.optim import Optimizer
from tinygan.tensor import Tensor
from tinygan.utils.cli import require_positive
from tinygan.utils.fileio import atomic_write
from tinygan.utils.images import save_grid, save_loss_plot, save_strip
from tinygan.utils.progress import Progress
from tinygan.utils.streams import RandomStreams

HISTORY = ("step", "d_loss", "g_loss", "d_real", "d_fake", "penalty", "seconds")
# Settings that may change between a run and its resumption without changing the result.
_RESUMABLE_CHANGES = {
    "steps",
    "resume",
    "device",
    "log_every",
    "sample_every",
    "checkpoint_every",
    "eval_every",
    "sample",
}


@dataclass
class RunConfig:
    """The settings of a run's records (each demo's settings add the algorithm's own).

    Attributes:
        steps: generator updates in the whole run.
        z_dim: size of the noise vector.
        seed: seeds the weights, the noise and the order of the batches.
        device: "auto" (the GPU when there is one), "cpu" or "cuda".
        out: the run's output folder.
        sample_every: steps between sample grids.
        checkpoint_every: steps between checkpoints.
        log_every: steps between log lines when the output is not a terminal.
        eval_every: steps between sample-quality scores of 2,000 generated images
            (tinygan.metrics: Fréchet distance, inception-style score, class coverage;
            MNIST only), written to metrics.csv and the progress output; 0: never.
        resume: continue from out/checkpoint.npz.
        sample: only load out/checkpoint.npz and write a sample grid and an interpolation.
    """

    steps: int = 2000
    z_dim: int = 100
    seed: int = 0
    device: str = "auto"
    out: str = "runs/gan"
    sample_every: int = 250
    checkpoint_every: int = 500
    log_every: int = 50
    eval_every: int = 0
    resume: bool = False
    sample: bool = False

    def __post_init__(self) -> None:
        require_positive(self, "steps", "z_dim")
        if self.device != "auto":
            normalize_device(self.device)


class Run:
    """The records of one training run in its output folder (see the module docstring).

    Attributes:
        eval_samples: generated images scored at each evaluation.

    Args:
        config: the run's settings (a :class:`RunConfig`, usually a demo's subclass).
        generator, discriminator: the two networks, already on their device.
        opt_g, opt_d: their optimizers.
        stream: where progress and messages go (the demos pass ``sys.stdout``); None: nowhere.
    """

    eval_samples = 2000

    def __init__(
        self,
        config: RunConfig,
        generator: Module,
        discriminator: Module,
        opt_g: Optimizer,
        opt_d: Optimizer,
        stream: TextIO | None = None,
    ) -> None:
        self.config = config
        self.generator, self.discriminator = generator, discriminator
        self.opt_g, self.opt_d = opt_g, opt_d
        self.out = Path(config.out)
        self.streams = RandomStreams(config.seed)
        self.device = next(iter(generator.parameters())).device
        self.step = 0  # the last finished step
        self._seconds_before = 0.0  # training time before this process (resumed runs)
        self.history: dict[str, list[float]] = {name: [] for name in HISTORY}
        self.metrics_history: list[dict[str, float]] = []  # one row per evaluation
        self.progress = Progress(config.steps, 0, stream, config.log_every)

    # ------------------------------------------------------------------ the loop's side
    def steps(self) -> Iterator[int]:
        """Steps 1..``config.steps`` (after the checkpoint's step with ``resume``).

        Starts the run: loads the checkpoint when resuming, writes ``config.json``. While
        the loop runs, Ctrl-C and SIGTERM wait for the current step to finish; then a
        checkpoint of that step is written and the process exits (status 128 + signal).
        """
        self.out.mkdir(parents=True, exist_ok=True)
        if self.config.resume:
            self.resume()
        self._write_config()
        self._seconds_before = self.history["seconds"][-1] if self.history["seconds"] else 0.0
        self.progress = Progress(
            self.config.steps, self.step, self.progress.stream, self.config.log_every
        )
        self.message(
            f"training on {self.device} for {self.config.steps} steps (from step {self.step}); "
            f"output in {self.out.resolve()}"
        )
        with _signals_deferred() as caught:
            for step in range(self.step + 1, self.config.steps + 1):
                yield step
                if caught:
                    self.save_checkpoint()
                    self.message(
                        f"\ninterrupted: checkpoint of step {self.step} saved in "
                        f"{self.checkpoint_path}; run again with --resume to continue"
                    )
                    raise SystemExit(128 + caught[0])
        self.message(
            f"done: {self.step} steps in {self.history['seconds'][-1]:.0f} s; samples in "
            f"{(self.out / 'samples').resolve()}, losses in {(self.out / 'losses.png').resolve()}"
        )

    def log(self, step: int, **values: float) -> None:
        """Step ``step`` is finished: record its losses, update the progress line.

        ``values`` are the columns of ``losses.csv`` (``d_loss``, ``g_loss``, ``d_real``,
        ``d_fake``, ``penalty``; a missing one is recorded as 0).
        """
        self.step = step
        self.history["step"].append(float(step))
        values["seconds"] = self._seconds_before + self.progress.elapsed()
        for name in HISTORY[1:]:
            self.history[name].append(float(values.get(name, 0.0)))
        self.progress.update(step, {"d_loss": values["d_loss"], "g_loss": values["g_loss"]})

    def due(self, step: int, every: int) -> bool:
        """True every ``every`` steps and at the last step (never when ``every`` is 0)."""
        return every > 0 and (step % every == 0 or step == self.config.steps)

    def message(self, text: str) -> None:
        """One line to the run's stream, if it has one."""
        self.progress.message(text)

    # ------------------------------------------------------------------ records
    def save_samples(self, step: int) -> Path:
        """The fixed-noise grid of step ``step`` as ``samples/step_XXXXXX.png``."""
        z = Tensor(self.streams.grid_noise(64, self.config.z_dim)).to(self.device)
        path = self.out / "samples" / f"step_{step:06d}.png"
        save_grid(generate(self.generator, z), path, nrow=8)
        return path

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.npz"

    def save_checkpoint(self) -> None:
        """Write ``checkpoint.npz``, ``losses.csv`` and ``losses.png`` (each atomically)."""
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

    @property
    def metrics_path(self) -> Path:
        return self.out / "metrics.csv"

    def evaluate(self, step: int) -> metrics.QualityScores:
        """Score ``eval_samples`` generated images; append them to ``metrics.csv``.

        The noise is the same at every evaluation (a stream no training step draws from),
        so the scores follow the generator, not the noise; generating in eval mode leaves
        the training exactly as it would be without evaluations.
        """
        z = self.streams.evaluation_noise(self.eval_samples, self.config.z_dim)
        scores = metrics.score(generate_many(self.generator, z, self.device))
        self.metrics_history.append({"step": float(step), **scores.as_dict()})
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(self.metrics_history[0]))
        writer.writeheader()
        for row in self.metrics_history:
            writer.writerow({k: f"{v:.6g}" for k, v in row.items()})
        with atomic_write(self.metrics_path) as f:
            f.write(text.getvalue().encode())
        self.message(f"step {step} quality: {scores.summary()}")
        return scores

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
            title = f"{self.out.name} losses"
            save_loss_plot(curves, self.out / "losses.png", title=title, steps=self.history["step"])


class _signals_deferred:
    """Context manager: SIGINT and SIGTERM are noted in a list instead of stopping the code.

    A second signal stops at once (KeyboardInterrupt), for when a step hangs. Outside the
    main thread, where Python cannot handle signals, nothing changes.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> list[int]:
        self.caught: list[int] = []
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._note) for s in self._SIGNALS}
        return self.caught

    def _note(self, signum: int, frame: Any) -> None:
        if self.caught:
            raise KeyboardInterrupt
        self.caught.append(signum)

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


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
    log: Callable[[str], None] | None = None,
) -> tuple[Path, Path]:
    """Load a generator (already on its device) from a training checkpoint; write a sample
    grid and an interpolation.

    Returns:
        The paths of ``samples.png`` and ``interpolation.png`` in ``out``.
    """
    load_checkpoint(checkpoint, generator=generator)
    device = next(iter(generator.parameters())).device
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
