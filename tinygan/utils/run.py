"""A training run's folder: settings, progress, sample grids, losses, checkpoints, resume.

A training loop owns the algorithm and every change of its state (the updates, the EMA
of G, BatchNorm statistics measured before sampling); a :class:`Run` keeps its records,
called from the loop between steps, and changes no weight and no process setting::

    run = Run(config, G, D, opt_g, opt_d, ema=ema, streams=streams, stream=sys.stdout)
    for step in run.steps():          # resumes after the checkpoint's step when asked
        ...                           # one discriminator and one generator update
        run.log(step, d_loss=..., g_loss=...)
        if run.due(step, config.sample_every):
            run.save_samples(step, sampler)
        ...

The one exception is ``--resume``: :meth:`steps` loads the checkpoint into the networks,
the optimizers and the EMA it was given, before the first step (and scores the
checkpoint's step if a killed run left it unscored, measuring the EMA's BatchNorm
statistics first as the loop does before each score; the EMA's next update replaces them).

The folder ``config.out`` holds ``config.json`` (the settings), ``samples/step_XXXXXX.png``
(a grid from a fixed noise batch), ``losses.csv`` and ``losses.png``, ``checkpoint.npz``
(weights, optimizer moments, BatchNorm statistics, the step and the loss history: all a
resumed run needs, since every random number is a pure function of the seed and the step,
see :mod:`tinygan.utils.streams`) and, with evaluations, ``metrics.csv``.

The folder belongs to one run, and to one process at a time:

* A run locks its folder (``.lock``, see :class:`~tinygan.utils.fileio.FolderLock`)
  before it writes anything, and lets go when it ends. A second run into a folder whose
  run is still going, with or without ``--overwrite`` or ``--resume``, stops and names
  the process; so does ``--sample``, which writes its grids into the folder (reading the
  checkpoint of a live run would be safe, as it is written atomically; writing beside the
  run is not). The lock of a process that died (``kill -9``) is taken over.
* A new run stops (:class:`RunError`) where a run already left its files, naming the
  choices: ``--resume`` continues it, ``--overwrite`` deletes the files a run writes
  (:data:`RUN_FILES` and the grids in ``samples/``, never other files) and starts again,
  or another ``--out``.
* ``--resume`` continues from ``checkpoint.npz`` with the same settings (``config.json``
  says which; the folder may be spelled another way). Without a checkpoint, nothing has
  been saved to continue from: the run says so and starts from step 0, which makes a
  command with ``--resume`` safe to repeat until the run is done.
* Ctrl-C (SIGINT) and SIGTERM do not cut a step in half: they are noted, the step
  finishes, a checkpoint of it is written, and the process exits (status 130 or 143), so
  ``--resume`` continues exactly as if nothing had happened. Before the first step there
  is nothing to save: the run stops at once with the same status.
* A diverged run stops (:class:`RunError`) when the losses of a step come back not finite
  (at the latest at the next log line, grid or checkpoint), naming that step, before it
  writes anything: the last checkpoint and grids are those of good steps.
* A file that cannot be written (a full disk) stops the run in one line that names it and
  says which checkpoint is intact; a checkpoint that cannot be read, or that holds another
  model, stops ``--resume`` and ``--sample`` in one line that says what the file is.
* A run killed (``kill -9``) while it scored a step that it had already checkpointed
  scores that step again when resumed, so ``metrics.csv`` ends as an uninterrupted run's.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import errno
import io
import json
import math
import re
import shlex
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from tinygan import metrics
from tinygan.backend import array_module, is_cupy_array, normalize_device, to_numpy
from tinygan.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from tinygan.ema import EMA, recompute_batchnorm
from tinygan.gan import LOSSES, generate, generate_many
from tinygan.nn import Module
from tinygan.optim import Optimizer
from tinygan.tensor import Tensor, array_of
from tinygan.utils.cli import require_positive, require_range
from tinygan.utils.diagnostics import Watch, diversity, gradient_norm
from tinygan.utils.fileio import FolderInUse, FolderLock, atomic_write, check_unlocked
from tinygan.utils.images import (
    save_diagnostics_plot,
    save_gif,
    save_grid,
    save_loss_plot,
    save_metrics_plot,
    save_strip,
)
from tinygan.utils.progress import Progress
from tinygan.utils.streams import INTERPOLATION, SAMPLES, RandomStreams

# The columns of losses.csv: one row per step (tinygan/utils/diagnostics.py says what each
# diagnostic means).
HISTORY = (
    "step", "d_loss", "g_loss", "d_real", "d_fake", "wasserstein", "penalty", "g_grad_norm",
    "d_grad_norm", "seconds",
)  # fmt: skip
# The files a run (or --sample) writes in its folder, besides the grids in samples/.
RUN_FILES = (
    "config.json", "checkpoint.npz", "losses.csv", "losses.png", "diagnostics.png",
    "metrics.csv", "metrics.png", "progress.gif", "samples.png", "interpolation.png",
)  # fmt: skip
_NORMS = ("g_grad_norm", "d_grad_norm")
_GRID_NAME = re.compile(r"step_\d{6,}\.png")  # samples/step_XXXXXX.png
# Settings that may change between a run and its resumption without changing the result.
_RESUMABLE_CHANGES = {
    "steps",
    "resume",
    "overwrite",
    "device",
    "out",  # the same folder, perhaps spelled another way: config.json is read from it
    "log_every",
    "sample_every",
    "checkpoint_every",
    "eval_every",
    "sample",
}
_FOLDER_SETTINGS = {"data_root", "root"}  # compared resolved: "./digits" is "digits"


def _as_floats(values: list[Any]) -> list[float]:
    """Numbers and one-element arrays as floats; those on a GPU read back in one transfer."""
    on_gpu = [v.reshape(()) for v in values if is_cupy_array(v)]
    host = iter(to_numpy(array_module(on_gpu[0]).stack(on_gpu)).tolist() if on_gpu else ())
    return [next(host) if is_cupy_array(v) else float(v) for v in values]


class RunError(SystemExit):
    """A run cannot start or cannot go on; the message says why and what to do.

    A ``SystemExit`` whose code is the message: a demo stops with the message on stderr,
    status 1 and no traceback, and a caller can catch it like any exception.
    """


@dataclass
class RunConfig:
    """The settings of a run's records (each demo's settings add the algorithm's own).

    Attributes:
        steps: generator updates in the whole run.
        z_dim: size of the noise vector.
        seed: seeds the weights, the noise and the order of the batches.
        device: "auto" (the GPU when there is one), "cpu" or "cuda".
        out: the run's output folder; a new run refuses one that holds a run already.
        sample_every: steps between sample grids (and at the last step); 0: none.
        checkpoint_every: steps between checkpoints (and at the last step); 0: none, so
            that --resume and --sample find nothing to load unless the run is interrupted.
        log_every: steps between log lines when the output is not a terminal.
        eval_every: steps between sample-quality scores of 2,000 generated images
            (tinygan.metrics: Fréchet distance, inception-style score, class coverage;
            MNIST only), written to metrics.csv and the progress output; 0: never.
        ema: decay of an exponential moving average of G's weights (tinygan.ema), which the
            grids, the scores and --sample draw with; 0: off, G draws them.
        resume: continue from out/checkpoint.npz (from step 0 when there is none yet).
        overwrite: delete the run in out (only the files a run writes) and start again.
        sample: only load out/checkpoint.npz and write a sample grid and an interpolation.
        reference: run only the plain compositions the tour teaches (no tinygan/fast/).
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
    ema: float = 0.0
    resume: bool = False
    overwrite: bool = False
    sample: bool = False
    reference: bool = False

    def __post_init__(self) -> None:
        check_run_settings(self)


def check_run_settings(config: Any) -> None:
    """Check the settings a :class:`Run` reads (the fields of :class:`RunConfig`).

    Raises:
        ValueError: naming the setting, its allowed range and its value.
    """
    require_positive(config, "steps", "z_dim", "log_every")
    require_range(config, "seed", "sample_every", "checkpoint_every", "eval_every", low=0)
    require_range(config, "ema", low=0, high=1)
    if config.device != "auto":
        normalize_device(config.device)
    if config.resume and config.overwrite:
        raise ValueError(
            "--resume and --overwrite exclude each other: --resume continues the run in "
            "--out, --overwrite deletes it and starts again"
        )
    if config.eval_every and getattr(config, "dataset", "mnist") != "mnist":
        raise ValueError("eval_every scores digits with an MNIST classifier: MNIST runs only")


class Run:
    """The records of one training run in its output folder (see the module docstring).

    Attributes:
        eval_samples: generated images scored at each evaluation.

    Args:
        config: the run's settings: a dataclass with the fields of :class:`RunConfig`
            (checked here, see :func:`check_run_settings`) and the algorithm's own.
        generator, discriminator: the two networks, already on their device.
        opt_g, opt_d: their optimizers.
        ema: the EMA of the generator the loop keeps (with ``--ema``), checkpointed and
            resumed with the networks; None: none.
        streams: the run's random streams (the loop draws its noise from the same object);
            the grids, the scores and the EMA's BatchNorm statistics draw from it too.
        stream: where progress and messages go (the demos pass ``sys.stdout``); None: nowhere.
        loss: the loss family's name in ``tinygan.gan.LOSSES``, whose target for D(G(z))
            the warnings read (:mod:`tinygan.utils.diagnostics`); the main demo's LSGAN
            by default.
        real_examples: a batch of real images (N >= 2, N, C, H, W): each grid's diversity
            is held against theirs, and a grid far less diverse warns of mode collapse;
            None: no such check.

    Raises:
        ValueError: a setting of the run is out of its range.
        RunError: ``config.out`` cannot be the run's folder (see :func:`check_folder`);
            checked here, before the caller loads its data, and again under the lock.
    """

    eval_samples = 2000

    def __init__(
        self,
        config: RunConfig,
        generator: Module,
        discriminator: Module,
        opt_g: Optimizer,
        opt_d: Optimizer,
        *,
        ema: EMA | None = None,
        streams: RandomStreams | None = None,
        stream: TextIO | None = None,
        loss: str = "lsgan",
        real_examples: Any = None,
    ) -> None:
        check_run_settings(config)
        check_folder(config)
        self.config = config
        self.generator, self.discriminator = generator, discriminator
        self.opt_g, self.opt_d = opt_g, opt_d
        self.ema = ema
        self.out = Path(config.out)
        self._lock = FolderLock(self.out.resolve())  # held from steps()' start to its end
        self.streams = RandomStreams(config.seed) if streams is None else streams
        self.device = next(iter(generator.parameters())).device
        self.step = 0  # the last finished step
        self.checkpoint_step = 0  # the step of the checkpoint in the folder (0: none)
        self._seconds_before = 0.0  # training time before this process (resumed runs)
        self.history: dict[str, list[float]] = {name: [] for name in HISTORY}
        self._logged: list[tuple[int, float, dict[str, Any]]] = []  # not yet read back
        self._shown: dict[str, float] = {}  # the losses on the progress line
        self.metrics_history: list[dict[str, float]] = []  # one row per evaluation
        self.progress = Progress(config.steps, 0, stream, config.log_every)
        self.watch = Watch(LOSSES[loss].fake_target)  # the warnings, each given once
        self._real_diversity = None if real_examples is None else diversity(real_examples)

    # ------------------------------------------------------------------ the loop's side
    def steps(self) -> Iterator[int]:
        """Steps 1..``config.steps`` (after the checkpoint's step with ``resume``).

        Starts the run: locks the output folder, then claims it (see the module docstring:
        a run already there stops this one unless ``resume`` or ``overwrite`` says what to
        do with it), loads the checkpoint when resuming, writes ``config.json``. Meanwhile
        and during the steps, Ctrl-C and SIGTERM wait for the current step to finish; then
        a checkpoint of it is written (none before step 1) and the process exits (status
        128 + signal). The lock is let go when the steps end, however they end.

        Raises:
            RunError: the folder holds another run or a live process, ``resume`` meets
                other settings or a checkpoint it cannot load.
        """
        try:
            with _signals_deferred() as caught:
                self._start()
                first = self.step
                for step in range(self.step + 1, self.config.steps + 1):
                    if caught:
                        break
                    yield step
                if caught:
                    self._stop(caught[0], steps_done=self.step - first)
        finally:
            self._lock.release()
        written = {"samples": self.out / "samples", "losses": self.out / "losses.png"}
        where = "".join(f"; {k} in {p.resolve()}" for k, p in written.items() if p.exists())
        self.message(f"done: {self.step} steps in {self.history['seconds'][-1]:.0f} s{where}")

    def log(self, step: int, **values: Any) -> None:
        """Step ``step`` is finished: record its losses and update the progress line.

        ``values`` are the columns of ``losses.csv`` (``d_loss``, ``g_loss``, ``d_real``,
        ``d_fake``, ``penalty``; a missing one is recorded as 0): numbers, or one-element
        tensors or arrays where they were computed. The diagnostics are added here: the
        gradient norms of G's and D's parameters as their last updates left them
        (``g_grad_norm``, ``d_grad_norm``, unless given) and ``wasserstein`` =
        ``d_real - d_fake`` (see :mod:`tinygan.utils.diagnostics`); at each log line the
        history is read for the known failures' signs, each warned of once. On the CPU
        the values are read at once. Reading
        a number back from a GPU makes the host wait for it, so those stay on the device
        until the progress line shows them (every ``log_every`` steps and at the last step)
        or a grid, a checkpoint or a score is written: then the values of every step since
        come back in one transfer.

        This is also the divergence guard: losses that come back not finite (NaN or
        infinite) stop the run, naming their step, before a grid or a checkpoint is
        written, so the last checkpoint and grids stay those of good steps. The weights,
        which would cost a pass over every array at every step, are checked only before
        they are written or drawn (see :meth:`save_checkpoint`, :meth:`save_samples`).

        Raises:
            RunError: a loss is not finite; the message names the step, the values and
                the likely cause.
        """
        seconds = self._seconds_before + self.progress.elapsed()
        for name, network in zip(_NORMS, (self.generator, self.discriminator)):
            if name not in values:  # a loop may give its own (continue_in_pytorch.py does)
                values[name] = gradient_norm(network.parameters())
        arrays = {k: array_of(v) for k, v in values.items()}
        self._logged.append((step, seconds, arrays))
        self.step = step
        on_host = not any(is_cupy_array(a) for a in arrays.values())  # reading costs nothing
        log_line = self.due(step, self.config.log_every)
        if on_host or log_line:
            self._read_back_logged()
        if log_line:
            for warning in self.watch.after_steps(self.history):
                self.message(warning)
        self.progress.update(step, self._shown)

    def _read_back_logged(self) -> None:
        """Bring the logged values to the host in one transfer, check them (the divergence
        guard of :meth:`log`) and add them to the history.
        """
        logged, self._logged = self._logged, []
        numbers = iter(_as_floats([v for _, _, values in logged for v in values.values()]))
        for step, seconds, values in logged:
            row = {k: next(numbers) for k in values}
            # The losses, not the gradient norms: a float32 sum of squares overflows first.
            bad = {k: v for k, v in row.items() if not (math.isfinite(v) or k in _NORMS)}
            if bad:
                shown = ", ".join(f"{k} {v}" for k, v in bad.items())
                raise self._diverged(
                    step, f"its losses are not finite ({shown}), so it saved nothing"
                )
            self.history["step"].append(float(step))
            row["seconds"] = seconds
            row["wasserstein"] = row.get("d_real", 0.0) - row.get("d_fake", 0.0)
            for name in HISTORY[1:]:
                self.history[name].append(row.get(name, 0.0))
            self._shown = {"d_loss": row["d_loss"], "g_loss": row["g_loss"]}

    def due(self, step: int, every: int) -> bool:
        """True every ``every`` steps and at the last step (never when ``every`` is 0)."""
        return every > 0 and (step % every == 0 or step == self.config.steps)

    def message(self, text: str) -> None:
        """One line to the run's stream, if it has one."""
        self.progress.message(text)

    # ------------------------------------------------------------------ records
    def save_samples(
        self, step: int, sampler: Module | None = None, images: np.ndarray | None = None,
        nrow: int = 8,
    ) -> Path:  # fmt: skip
        """The grid of step ``step`` as ``samples/step_XXXXXX.png``.

        Args:
            step: the step just finished.
            sampler: the generator that draws the grid (G, or its EMA), in eval mode, from
                64 fixed noise vectors (the grid noise stream), the same at every step.
            images: what to draw instead, (N, C, H, W) in [-1, 1].
            nrow: images per row.

        Also redraws ``progress.gif``, every grid of the run so far, one frame each.

        Raises:
            RunError: a weight of the generator is not finite (nothing is drawn), or a file
                cannot be written.
        """
        self._check_weights(("generator", self.generator), what=f"the grid of step {step}")
        if images is None:
            if sampler is None:
                raise ValueError("save_samples: give the generator that draws (sampler=...)")
            z = Tensor(self.streams.grid_noise(64, self.config.z_dim)).to(self.device)
            images = generate(sampler, z)
        path = self.out / "samples" / f"step_{step:06d}.png"
        with self._writing(path):
            save_grid(images, path, nrow=nrow)
        if self._real_diversity:  # mode collapse: a grid far less varied than real images
            for warning in self.watch.after_grid(step, diversity(images) / self._real_diversity):
                self.message(warning)
        grids = sorted(p for p in path.parent.iterdir() if _GRID_NAME.fullmatch(p.name))
        with self._writing(self.out / "progress.gif"):
            save_gif(grids, self.out / "progress.gif")
        return path

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.npz"

    def save_checkpoint(self) -> None:
        """Write ``checkpoint.npz``, ``losses.csv`` and ``losses.png`` (each atomically).

        Raises:
            RunError: a weight or BatchNorm statistic of either network is not finite;
                nothing is written, so the checkpoint in the folder stays a good one. Or a
                file cannot be written (a full disk): the checkpoint before stays intact,
                since it is replaced only by a complete new one.
        """
        networks = ("generator", self.generator), ("discriminator", self.discriminator)
        self._check_weights(*networks, what=f"the checkpoint of step {self.step}")
        history = {f"history_{k}": np.asarray(v, dtype=np.float64) for k, v in self.history.items()}
        with self._writing(self.checkpoint_path):
            save_checkpoint(
                self.checkpoint_path,
                generator=self.generator,
                discriminator=self.discriminator,
                opt_g=self.opt_g,
                opt_d=self.opt_d,
                step=self.step,
                **({} if self.ema is None else {"generator_ema": self.ema.model}),
                **history,
            )
        self.checkpoint_step = self.step
        self._write_losses()

    def resume(self) -> None:
        """Load ``checkpoint.npz`` of the output folder (a fresh start, said so, without one).

        Raises:
            RunError: the folder's ``config.json`` holds settings that change the result, or
                the checkpoint cannot be read or holds other networks (nothing is changed).
        """
        self._check_config_matches()
        if not self.checkpoint_path.exists():
            self.message(
                f"--resume: no checkpoint in {self.out.resolve()} yet, so nothing to continue "
                "from: starting from step 0"
            )
            return
        try:
            extras = load_checkpoint(
                self.checkpoint_path,
                generator=self.generator,
                discriminator=self.discriminator,
                opt_g=self.opt_g,
                opt_d=self.opt_d,
                **({} if self.ema is None else {"generator_ema": self.ema.model}),
            )
        except CheckpointError as err:
            cure = "restore its checkpoint (from a copy)"
            if isinstance(err, CheckpointMismatchError):
                unknown = "" if (self.out / "config.json").exists() else _NO_CONFIG
                cure = f"resume with the settings of the run that wrote it{unknown}"
            raise self._fail(
                f"--resume: {err}. Nothing in {self.out.resolve()} was changed: {cure}, or "
                "start again with --overwrite (or another --out folder)"
            ) from err
        self.step = self.checkpoint_step = int(extras["step"])
        steps = len(extras["history_step"])  # a run of 0.5 has no gradient norms: NaN, not drawn
        self.history = {
            k: list(map(float, extras.get(f"history_{k}", np.full(steps, np.nan)))) for k in HISTORY
        }
        if "history_wasserstein" not in extras:  # 0.5 kept the two means it is made of
            pairs = zip(self.history["d_real"], self.history["d_fake"])
            self.history["wasserstein"] = [real - fake for real, fake in pairs]
        if self.metrics_path.exists():  # keep the evaluations up to the checkpoint's step
            with open(self.metrics_path, newline="") as f:
                rows = [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]
            self.metrics_history = [row for row in rows if row["step"] <= self.step]

    @property
    def metrics_path(self) -> Path:
        return self.out / "metrics.csv"

    def evaluate(self, step: int, sampler: Module) -> metrics.QualityScores:
        """Score ``eval_samples`` images of ``sampler`` (G, or its EMA); write
        ``metrics.csv`` and ``metrics.png`` (each score against the steps, beside the
        real-data floor).

        The noise is the same at every evaluation (a stream no training step draws from),
        so the scores follow the generator, not the noise; generating in eval mode leaves
        the training exactly as it would be without evaluations. ``metrics.csv`` is written
        last: a step has its row only once everything of its scoring is written, and a run
        killed before that scores the step again when resumed (see :meth:`_score_missing`).
        """
        self._check_weights(("generator", self.generator), what=f"the scores of step {step}")
        z = self.streams.evaluation_noise(self.eval_samples, self.config.z_dim)
        scores = metrics.score(generate_many(sampler, z, self.device))
        self.metrics_history.append({"step": float(step), **scores.as_dict()})
        text = io.StringIO()
        columns = ["step", *scores.as_dict()]  # rows of older runs may lack a newer score
        writer = csv.DictWriter(text, fieldnames=columns, restval="")
        writer.writeheader()
        for row in self.metrics_history:
            writer.writerow({k: f"{v:.6g}" for k, v in row.items() if k in columns})
        complete = [row for row in self.metrics_history if set(columns) <= set(row)]
        floor = metrics.real_floor().as_dict()
        with self._writing(self.out / "metrics.png"):
            save_metrics_plot(complete, self.out / "metrics.png", floor=floor)
        with self._writing(self.metrics_path), atomic_write(self.metrics_path) as f:
            f.write(text.getvalue().encode())
        self.message(f"step {step} quality: {scores.summary()}")
        for warning in self.watch.after_scores(step, scores):
            self.message(warning)
        return scores

    # ------------------------------------------------------------------ internals
    def _start(self) -> None:
        """Lock the folder, claim it (see the module docstring), resume, write ``config.json``;
        score the checkpoint's step if a killed run left it unscored.
        """
        _make_folder(self.out)
        try:
            self._lock.acquire()
        except FolderInUse as err:
            raise self._fail(_in_use(err, _SECOND_RUN)) from err
        except OSError as err:  # a file system without locks: go on, but say so
            self.message(
                f"could not lock {self._lock.path} ({err.strerror or err}): nothing keeps a "
                "second run out of this folder"
            )
        found = _existing_run(self.config)  # under the lock: no other run can write now
        if self.config.resume:
            self.resume()
        elif found:
            self._delete_run_files()
            self.message(f"--overwrite: deleted the earlier run's {', '.join(found)}")
        self._write_config()
        self._seconds_before = self.history["seconds"][-1] if self.history["seconds"] else 0.0
        self.progress = Progress(
            self.config.steps, self.step, self.progress.stream, self.config.log_every
        )
        self.message(
            f"training on {self.device} for {self.config.steps} steps (from step {self.step}); "
            f"output in {self.out.resolve()}"
        )
        self._score_missing()

    def _score_missing(self) -> None:
        """Score the checkpoint's step again if it is due a score and ``metrics.csv`` lacks it.

        The loop checkpoints a step before it scores it, so a run killed while scoring
        (``kill -9``, a power cut) resumes after a step without its row, which no later
        step would write. The scores are drawn as the loop draws them: by the EMA of G when
        the run keeps one (a copy of it, its BatchNorm statistics measured on the run's noise
        as the loop does before each score: the run's own EMA is left as it is), else by G;
        so the row is the uninterrupted run's.
        """
        step, every = self.step, self.config.eval_every
        if not (step and self.due(step, every)):
            return
        if any(row["step"] == step for row in self.metrics_history):
            return
        self.message(f"--resume: step {step} has a checkpoint but no scores yet: scoring it")
        sampler = self.generator
        if self.ema is not None:  # on a copy: the records change no state of the loop's
            sampler = copy.deepcopy(self.ema.model)
            noise = self.streams.batchnorm_noise(self.config.z_dim)
            recompute_batchnorm(sampler, [Tensor(z).to(self.device) for z in noise])
        self.evaluate(step, sampler)

    def _stop(self, signum: int, steps_done: int) -> None:
        """After SIGINT or SIGTERM: save the last finished step (if any), exit 128 + signum."""
        if steps_done:
            self.save_checkpoint()
            self.message(
                f"\ninterrupted: checkpoint of step {self.step} saved in "
                f"{self.checkpoint_path.resolve()}; run again with --resume to continue"
            )
        else:
            self.message(f"interrupted before step {self.step + 1}: nothing new to save")
        raise SystemExit(128 + signum)

    def _delete_run_files(self) -> None:
        """Delete the files a run writes, and ``samples/`` if nothing else is in it."""
        for name in RUN_FILES:
            (self.out / name).unlink(missing_ok=True)
        samples = self.out / "samples"
        if samples.is_dir():
            for grid in samples.iterdir():
                if _GRID_NAME.fullmatch(grid.name):
                    grid.unlink()
            if not any(samples.iterdir()):
                samples.rmdir()

    def _check_weights(self, *networks: tuple[str, Module], what: str) -> None:
        """Raise the divergence RunError if a logged loss (read back first: see :meth:`log`)
        or an array of the named ``networks`` is not finite.
        """
        self._read_back_logged()
        for name, network in networks:
            arrays = network.state_dict().items()
            bad = [k for k, a in arrays if not array_module(a).isfinite(a).all()]
            if bad:
                listed = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
                raise self._diverged(
                    self.step, f"{len(bad)} arrays of the {name} are not finite ({listed}); "
                    f"{what} was not written"
                )  # fmt: skip

    def _diverged(self, step: int, what: str) -> RunError:
        """The error that stops a diverged run: which step, what, why, what is kept.

        The data is not the suspect: the loaders refuse images with a NaN or infinite
        pixel (tinygan.data.BatchLoader, the image-folder loader), so a loss that is not
        finite comes from the training itself, most often from too large a step.
        """
        rates = {k: v for k, v in asdict(self.config).items() if k.startswith("lr")}
        cause = "learning rates too large" if rates else "a setting that makes training unstable"
        if rates:
            cause += " (" + ", ".join(f"{k} {v:g}" for k, v in rates.items()) + ")"
        kept = (
            f"The last checkpoint, of step {self.checkpoint_step}, is kept in "
            f"{self.checkpoint_path.resolve()}"
            if self.checkpoint_step
            else "No checkpoint had been written"
        )
        return self._fail(
            f"step {step}: training diverged: {what}. The real images were checked finite "
            f"as they were loaded (no NaN or infinite pixel), so the likely cause is {cause}. "
            f"{kept}. Start again with a smaller learning rate (--overwrite, or another --out "
            "folder)."
        )

    def _fail(self, text: str) -> RunError:
        """The RunError that ends the run, the folder's lock let go; the message goes below
        the last progress line.
        """
        self._lock.release()
        if self.progress.is_terminal:
            self.progress.stream.write("\n")
        return RunError(text)

    @contextlib.contextmanager
    def _writing(self, path: Path) -> Iterator[None]:
        """An OSError while ``path`` is written (a full disk, a quota, no permission) stops
        the run in one line naming the file and the checkpoint that is intact (each file
        is written atomically, so the failed one is as it was).
        """
        try:
            yield
        except OSError as err:
            kept = (
                f"the checkpoint of step {self.checkpoint_step} is intact in "
                f"{self.checkpoint_path.resolve()}"
                if self.checkpoint_step
                else "no checkpoint had been written yet"
            )
            hint = _WRITE_HINTS.get(err.errno or 0, "")
            cure = "Make room (or lift the limit)" if hint else "Fix that"
            again = f" to continue from step {self.checkpoint_step}" if self.checkpoint_step else ""
            raise self._fail(
                f"step {self.step}: could not write {path.resolve()}: {err.strerror or err}"
                f"{hint}; {kept}. {cure}, then run again with --resume{again}."
            ) from err

    def _check_config_matches(self) -> None:
        path = self.out / "config.json"
        if not path.exists():
            return
        defaults = older_run_settings(type(self.config))  # for older runs' gaps
        now = asdict(self.config)
        changed = _changed_settings(json.loads(path.read_text()), now, defaults)
        if changed:
            raise self._fail(
                f"--resume: the settings differ from the run in {self.out.resolve()} "
                f"({_describe_changes(changed, now)}); to continue it, add "
                f"{_flags(changed)}; or use another --out folder"
            )

    def _write_config(self) -> None:
        path = self.out / "config.json"
        with self._writing(path), atomic_write(path) as f:
            f.write(json.dumps(asdict(self.config), indent=2).encode() + b"\n")

    def _write_losses(self) -> None:
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(HISTORY)
        for row in zip(*(self.history[k] for k in HISTORY)):
            writer.writerow([int(row[0]), *(f"{v:.6g}" for v in row[1:])])
        path = self.out / "losses.csv"
        with self._writing(path), atomic_write(path) as f:
            f.write(text.getvalue().encode())
        if self.history["step"]:
            curves = {"D loss": self.history["d_loss"], "G loss": self.history["g_loss"]}
            title, plot = f"{self.out.name} losses", self.out / "losses.png"
            with self._writing(plot):
                save_loss_plot(curves, plot, title=title, steps=self.history["step"])
            plot = self.out / "diagnostics.png"
            with self._writing(plot):
                save_diagnostics_plot(self.history, plot, f"{self.out.name} diagnostics")


def run_files(out: Path) -> list[str]:
    """The names of the files of a run in folder ``out`` (``samples/`` for the grids)."""
    found = [name for name in RUN_FILES if (out / name).exists()]
    samples = out / "samples"
    if samples.is_dir() and any(_GRID_NAME.fullmatch(p.name) for p in samples.iterdir()):
        found.append("samples/")
    return found


def check_folder(config: RunConfig) -> list[str]:
    """The run files already in ``config.out``; a RunError if ``config.out`` cannot be this
    run's folder: it is a file (or inside one), a live process holds its lock, or it holds
    a run and neither ``resume`` nor ``overwrite`` says what to do with it. Writes nothing.

    :class:`Run` checks when it is made and again, under the folder's lock, when it starts;
    a demo whose data takes long to load and that makes its Run after, checks first.
    """
    out = Path(config.out)
    _require_a_folder(out)
    if out.is_dir():
        try:
            check_unlocked(out.resolve())
        except FolderInUse as err:
            raise RunError(_in_use(err, _SECOND_RUN)) from err
    return _existing_run(config)


def _existing_run(config: RunConfig) -> list[str]:
    """The run files in ``config.out``; a RunError unless ``resume`` or ``overwrite``."""
    found = run_files(Path(config.out))
    if found and not (config.resume or config.overwrite):
        raise RunError(
            f"{Path(config.out).resolve()} already holds a run ({', '.join(found)}). Use "
            "--resume to continue it, --overwrite to delete it and start again, or another "
            "--out folder."
        )
    return found


_SECOND_RUN = "a second run cannot write there, with or without --overwrite or --resume"
_NO_CONFIG = " (the folder has no config.json to say which settings wrote it)"
_WRITE_HINTS = {
    getattr(errno, name): hint
    for name, hint in (
        ("ENOSPC", " (the disk is full)"),
        ("EDQUOT", " (the disk quota is used up)"),
        ("EFBIG", " (more than this process may write, see ulimit -f, or the disk allows)"),
    )
    if hasattr(errno, name)  # EDQUOT: not on Windows
}


def _require_a_folder(out: Path) -> None:
    """A RunError if ``out`` is a file, or inside one: it cannot become the run's folder."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                where = "is a file" if path == out else f"is inside {path}, which is a file"
                raise RunError(
                    f"--out {out} {where}, not a folder: give a folder for the run's outputs "
                    "(a new one is made)"
                )
            return


def _make_folder(out: Path) -> None:
    """Make the folder ``out`` (and its parents); a RunError naming why it cannot be made."""
    _require_a_folder(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"--out {out}: cannot make the folder: {err.strerror or err}") from err


def _in_use(err: FolderInUse, refused: str) -> str:
    """The message for a folder whose lock a live process holds (``err``): what is refused."""
    return (
        f"{err}: the run there is still going, and {refused}. Wait until it ends or stop it "
        "(Ctrl-C saves its checkpoint), or use another --out folder."
    )


def _saved_settings(folder: Path) -> dict[str, Any]:
    """The settings in ``folder/config.json``; empty where there is none (or it is unreadable)."""
    try:
        saved = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


# Each switch added to a demo's settings since 0.4 whose default today is not what runs
# from before it had: such a run's config.json lacks the switch, and its run had it off.
SWITCHES_OFF_BEFORE_ADDED = ("spectral_norm",)  # the main demo's default since 0.6


def older_run_settings(settings: type) -> dict[str, Any]:
    """Each setting of the dataclass ``settings`` as a run had it whose ``config.json`` lacks
    it, written by a tinygan from before the setting: off for the switches of
    ``SWITCHES_OFF_BEFORE_ADDED``, else today's default (every other setting added so far
    defaults to off: ``r1_gamma`` 0, ``augment`` "").
    """
    return {
        f.name: False if f.name in SWITCHES_OFF_BEFORE_ADDED else f.default
        for f in fields(settings)
    }


def _changed_settings(
    before: dict[str, Any], now: dict[str, Any], defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Each setting that changes the result of a run and differs between ``before`` and
    ``now``, with its value in ``before``.

    A setting missing from ``before`` (a run of a tinygan without it, such as ``r1_gamma``
    before 0.5) counts as its value in ``defaults`` when given (see
    :func:`older_run_settings`).
    """
    defaults = defaults or {}
    was = {k: before.get(k, defaults.get(k)) for k in now}
    return {k: was[k] for k in now if k not in _RESUMABLE_CHANGES and not _same(k, was[k], now[k])}


def _describe_changes(changed: dict[str, Any], now: dict[str, Any]) -> str:
    """``"name: before -> now, ..."`` for the settings of :func:`_changed_settings`."""
    return ", ".join(f"{k}: {was!r} -> {now[k]!r}" for k, was in changed.items())


def _flags(settings: dict[str, Any]) -> str:
    """The command-line flags that give each of ``settings`` its value: ``--ema 0.995``,
    ``--no-spectral-norm``.
    """
    words = []
    for name, value in settings.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        else:
            words.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(words)


def _same(name: str, before: Any, now: Any) -> bool:
    """Whether setting ``name`` is unchanged (folders compared as resolved paths)."""
    if name in _FOLDER_SETTINGS and before and now:
        return Path(before).resolve() == Path(now).resolve()
    return before == now


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
    a, b = RandomStreams(seed).rng(INTERPOLATION).standard_normal((2, z_dim), dtype=np.float32)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return Tensor((1.0 - t) * a + t * b).to(device)


def load_sampler(generator: Module, checkpoint: str | Path, z_dim: int, seed: int = 0) -> str:
    """Load the weights a run samples with into ``generator`` (already on its device).

    That is the EMA of G when the run kept one (``--ema``; its BatchNorm statistics then
    measured afresh, as the training loop does before it draws), else G itself.

    Returns:
        ``"generator_ema"`` or ``"generator"``: which weights were loaded.

    Raises:
        FileNotFoundError: there is no file at ``checkpoint``.
        CheckpointError: it cannot be read; CheckpointMismatchError: it holds another
            generator.
    """
    name = "generator"
    if any(key.startswith("generator_ema/") for key in read_checkpoint(checkpoint)):
        name = "generator_ema"
    load_checkpoint(checkpoint, **{name: generator})
    if name == "generator_ema":
        device = next(iter(generator.parameters())).device
        noise = RandomStreams(seed).batchnorm_noise(z_dim)
        recompute_batchnorm(generator, (Tensor(z).to(device) for z in noise))
    return name


def sample_from_checkpoint(
    generator: Module,
    checkpoint: str | Path,
    out: str | Path,
    z_dim: int,
    seed: int = 0,
    n: int = 64,
    log: Callable[[str], None] | None = None,
    *,
    config: Any = None,
) -> tuple[Path, Path]:
    """Load a generator (already on its device) from a training checkpoint (its EMA when
    the run kept one); write a sample grid and an interpolation.

    Reading the checkpoint of a run that is still going is safe (it is replaced atomically),
    but ``out`` is written, so a live run's lock on ``out`` stops this (see the module
    docstring); ``out`` is locked while the two files are written.

    Args:
        generator: the generator to load, built with the run's settings, on its device.
        checkpoint: the run's ``checkpoint.npz``.
        out: the folder to write the two files into (the demos: the run's folder).
        z_dim: the size of the generator's noise.
        seed: seeds the noise of the grid and the interpolation.
        n: images in the grid.
        log: where to say what was written; None: nowhere.
        config: the command's settings, if at hand: where the checkpoint does not fit the
            generator, the message names the settings in which they differ from the run's
            ``config.json`` (beside the checkpoint). ``z_dim`` is compared in any case.

    Returns:
        The paths of ``samples.png`` and ``interpolation.png`` in ``out``.

    Raises:
        RunError: there is no checkpoint; it cannot be read, or it holds another generator
            (its run's ``config.json`` gave another ``z_dim``, say); a live run holds
            ``out``; a file cannot be written.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    folder = checkpoint.parent.resolve()
    if not checkpoint.is_file():
        where = "that folder does not exist" if not folder.is_dir() else f"no {checkpoint.name}"
        raise RunError(
            f"--sample: there is no checkpoint in {folder} ({where}). Is --out the run's "
            "folder? A run writes its checkpoint every --checkpoint-every steps and at its end"
        )
    saved = _saved_settings(folder)
    if "z_dim" in saved and saved["z_dim"] != z_dim:
        raise RunError(
            f"--sample: the run in {folder} draws from noise of z_dim {saved['z_dim']} (its "
            f"config.json), not {z_dim}: give --z-dim {saved['z_dim']}"
        )
    _require_a_folder(out)
    if out.is_dir():  # before the checkpoint loads: a live run there stops this at once
        try:
            check_unlocked(out.resolve())
        except FolderInUse as err:
            raise RunError(_in_use(err, _SAMPLE)) from err
    try:
        which = load_sampler(generator, checkpoint, z_dim, seed)
    except CheckpointMismatchError as err:
        raise RunError(f"--sample: {err}{_which_settings(folder, saved, config)}") from err
    except CheckpointError as err:
        raise RunError(f"--sample: {err}; nothing was written") from err
    device = next(iter(generator.parameters())).device
    z = RandomStreams(seed).rng(SAMPLES).standard_normal((n, z_dim), dtype=np.float32)
    grid_path, strip_path = out / "samples.png", out / "interpolation.png"
    _make_folder(out)
    lock = FolderLock(out.resolve())
    try:
        lock.acquire()
    except FolderInUse as err:
        raise RunError(_in_use(err, _SAMPLE)) from err
    except OSError:
        pass  # a file system without locks: the two files are written atomically anyway
    try:
        with _sample_writing(grid_path):
            save_grid(generate(generator, Tensor(z).to(device)), grid_path, nrow=8)
        with _sample_writing(strip_path):
            line = interpolation_noise(z_dim, 10, seed, device)
            save_strip(generate(generator, line), strip_path)
    finally:
        lock.release()
    if log is not None:
        log(f"wrote {grid_path.resolve()} and {strip_path.resolve()} ({which} weights)")
    return grid_path, strip_path


@contextlib.contextmanager
def _sample_writing(path: Path) -> Iterator[None]:
    """An OSError while --sample writes ``path`` (a full disk): one line naming it."""
    try:
        yield
    except OSError as err:
        raise RunError(
            f"--sample: could not write {path.resolve()}: {err.strerror or err}"
            f"{_WRITE_HINTS.get(err.errno or 0, '')}; the checkpoint is untouched"
        ) from err


_SAMPLE = (
    "--sample would write samples.png and interpolation.png beside it (the run's own grids "
    "in samples/ show how it is doing meanwhile)"
)


def _which_settings(folder: Path, saved: dict[str, Any], config: Any) -> str:
    """What to add to "this checkpoint does not fit": which settings wrote it, if known."""
    if not saved:
        return f"{_NO_CONFIG}. Give --sample the settings of the run that wrote it"
    if config is not None:
        now = asdict(config)
        changed = _changed_settings(saved, now, older_run_settings(type(config)))
        if changed:
            return (
                f". The run's config.json differs from these settings in "
                f"{_describe_changes(changed, now)}: add {_flags(changed)}"
            )
    return f". Give --sample the settings of the run that wrote it (see {folder}/config.json)"
