"""Continue a tinygan run in PyTorch: one process, or several with DistributedDataParallel.

    python demos/continue_in_pytorch.py --out runs/mnist_lsgan --steps 4000
    torchrun --nproc-per-node 2 demos/continue_in_pytorch.py --out runs/mnist_lsgan --steps 4000

``--steps`` is the step to train to, as the demos' ``--steps`` with ``--resume``; a second
call continues from the first one's checkpoint. The run's ``config.json`` says which demo
made it and with which settings, and its ``checkpoint.npz`` holds G, D, their Adam moments
and step counts, the EMA of G and the step: :mod:`tinygan.bridge` rebuilds all of them in
PyTorch (``to_torch``, ``adam_to_torch``), and the loop below is the training loop of
demos/mnist_lsgan.py (tinygan/train.py's, with k discriminator steps and the GAN losses),
written in PyTorch. It draws the same batches (tinygan's ``BatchLoader``) and the same
noise (the run's named streams), so in one process the run goes on as tinygan would have
continued it, up to float32 rounding (tests/test_bridge.py holds ten steps of both to
each other).

Under ``torchrun --nproc-per-node N`` every process takes its rows of every batch and of
its noise, n/N each (n, the batch size, must be a multiple of N), and
DistributedDataParallel averages the gradients over the processes: for the mean losses
here that is the gradient of the whole batch. One thing differs: each BatchNorm layer
normalises a process's share with that share's statistics (``SyncBatchNorm`` would pool
them, on GPUs only), and each process keeps its own running statistics; process 0's are
saved. Backend gloo on the CPU, nccl on GPUs (one per process).

Process 0 keeps the run's records with tinygan's own ``Run``: the progress line,
``losses.csv``/``losses.png``, the sample grids and ``checkpoint.npz``, in tinygan's format
and written atomically by tinygan's ``save_checkpoint``, after the PyTorch state is copied
back into tinygan's objects. So ``python demos/mnist_lsgan.py --sample --out RUN``,
``--resume`` and demos/evaluate.py read a run that PyTorch continued. Ctrl-C (SIGTERM) in
one process lets the step finish and saves it, as in tinygan; under torchrun an interrupted
run keeps its last checkpoint.

Runs of demos/mnist_lsgan.py, mnist_gan.py and mnist_dcgan.py continue (Adam; the LSGAN,
GAN and saturating GAN losses); see docs/10-outgrowing-tinygan.md.
"""

import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import numpy as np

try:  # PyTorch is an optional extra of tinygan: without it, one line that says so
    import torch
except ImportError:
    raise SystemExit(
        'continue_in_pytorch.py needs PyTorch: pip install -e ".[torch]" (or pip install torch)'
    ) from None
import torch.distributed as dist
import torch.nn.functional as F
from mnist_lsgan import Config as LsganConfig  # the settings of demos/mnist_lsgan.py runs
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import update_bn

from tinygan import data, models, nn
from tinygan.bridge import adam_from_torch, adam_to_torch, to_torch
from tinygan.checkpoint import load_checkpoint
from tinygan.ema import EMA
from tinygan.optim import Adam
from tinygan.train import MnistConfig, discriminator_batchnorm  # mnist_gan.py, mnist_dcgan.py
from tinygan.utils.cli import parse_config, require_range, run_main, usage_errors
from tinygan.utils.run import Run, RunError, older_run_settings
from tinygan.utils.streams import RandomStreams

# DDP's setting for "no copy of the buffers before each forward pass" (renamed in 2.13).
NO_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    else {"broadcast_buffers": False}
)
SUPPORTED = (
    "runs of demos/mnist_lsgan.py, mnist_gan.py and mnist_dcgan.py (Adam; the losses "
    "lsgan, gan and gan-saturating)"
)


@dataclass
class ContinueConfig:
    """Continue a tinygan MNIST run in PyTorch, in one process or several (torchrun).

    Attributes:
        out: the run's folder, with its config.json and checkpoint.npz (the demo's --out).
        steps: the step to train to, as the demos' --steps with --resume; 0: the run's own.
        device: "auto" (a GPU per process when PyTorch sees one), "cpu" or "cuda".
    """

    out: str = "runs/mnist_lsgan"
    steps: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        require_range(self, "steps", low=0)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")


# tinygan's losses (tinygan/losses.py, where each is derived), on PyTorch tensors.
def lsgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


def lsgan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((fake - 1.0) ** 2).mean()


def gan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real).mean() + F.softplus(fake).mean()  # BCE on logits, real 1, fake 0


def gan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake).mean()  # non-saturating: -log sigmoid(D(G(z)))


def saturating_g_loss(fake: torch.Tensor) -> torch.Tensor:
    return -F.softplus(fake).mean()  # log(1 - sigmoid(D(G(z))))


def gradient_norm(module: torch.nn.Module) -> torch.Tensor:
    """sqrt(sum_p ||dL/dp||^2) over the parameters with a gradient, as the tinygan run
    records it (tinygan.utils.diagnostics.gradient_norm)."""
    grads = [p.grad.reshape(-1) for p in module.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.cat(grads)) if grads else torch.zeros(())


# loss name -> (L_D, L_G, whether D's scores are logits), as tinygan.gan.LOSSES
# The shared loop's R1 and DiffAugment: not carried over (spectral norm is).
STABILISERS = {"r1_gamma", "r1_every", "augment"}
ADDED_SINCE_0_4 = STABILISERS | {"spectral_norm"}  # settings an older config.json lacks

LOSSES = {
    "lsgan": (lsgan_d_loss, lsgan_g_loss, False),
    "gan": (gan_d_loss, gan_g_loss, True),
    "gan-saturating": (gan_d_loss, saturating_g_loss, True),
}


def run_settings(folder: Path, steps: int) -> Any:
    """The settings of the run in ``folder``, to continue to step ``steps`` (0: its own).

    They are the settings of the demo that made it (its config.json, read into that demo's
    own dataclass), so that tinygan's Run accepts them as a resumption of that run.

    Raises:
        RunError: no run folder, no checkpoint in it, or a run this script cannot continue.
    """
    config_path, checkpoint = folder / "config.json", folder / "checkpoint.npz"
    if not folder.is_dir():
        raise RunError(f"{folder}: no such folder; give the --out folder of a tinygan run")
    if not config_path.is_file():
        raise RunError(f"{folder} holds no config.json, so it is no tinygan run to continue")
    if not checkpoint.is_file():
        raise RunError(
            f"{folder} holds no checkpoint.npz yet, so there is nothing to continue from: "
            "train until the run saves one (--checkpoint-every), or stop it with Ctrl-C"
        )
    try:
        saved = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"{config_path} cannot be read as a run's settings: {err}") from None
    if not isinstance(saved, dict):
        raise RunError(f"{config_path} holds no settings (a JSON object), so no run to continue")
    # A run of an older tinygan lacks the settings added since (older_run_settings: off).
    known = [
        settings
        for settings in (LsganConfig, MnistConfig)
        if set(saved) <= _names(settings) and _names(settings) - set(saved) <= ADDED_SINCE_0_4
    ]
    if not known:
        other = sorted(set(saved) - _names(LsganConfig) - _names(MnistConfig))[:3]
        raise RunError(
            f"{folder} holds the run of another demo (its settings include {', '.join(other)}); "
            f"this script continues {SUPPORTED}"
        )
    loss, optimizer = saved.get("loss", "lsgan"), saved.get("optimizer", "adam")
    if loss not in LOSSES or optimizer != "adam":
        raise RunError(
            f"{folder} holds a run with --loss {loss} and --optimizer {optimizer}; this script "
            f"continues {SUPPORTED}"
        )
    try:
        config = known[0](**(older_run_settings(known[0]) | saved))
    except (ValueError, TypeError) as err:  # a config.json edited by hand
        raise RunError(f"{config_path}: a setting this run cannot have: {err}") from None
    defaults = MnistConfig()
    used = [
        n for n in sorted(STABILISERS) if saved.get(n, getattr(defaults, n)) != getattr(defaults, n)
    ]
    if used:
        flags = ", ".join("--" + name.replace("_", "-") for name in used)
        raise RunError(
            f"{folder} holds a run trained with {flags}, which this script does not carry "
            f"into PyTorch; it continues {SUPPORTED} without them"
        )
    # tinygan's copies of the networks stay on the CPU: they only hold what the Run writes.
    return replace(config, steps=steps or config.steps, resume=True, out=str(folder), device="cpu")


def _names(settings: type) -> set[str]:
    return {f.name for f in fields(settings)}


def start_processes(device_flag: str) -> tuple[int, int, torch.device]:
    """This process's rank, the number of processes and this process's device.

    Under torchrun (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT)
    it also joins the process group: nccl on GPUs (one per process), gloo on the CPU.
    """
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    gpu = device_flag == "cuda" or (device_flag == "auto" and torch.cuda.is_available())
    if gpu and not torch.cuda.is_available():
        raise ValueError("--device cuda: PyTorch sees no CUDA GPU (use --device cpu)")
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if gpu else "cpu")
    if gpu:
        torch.cuda.set_device(device)
    if "RANK" in os.environ:
        dist.init_process_group("nccl" if gpu else "gloo")
    return rank, world, device


def load_tinygan_run(config: Any) -> tuple[Any, ...]:
    """G, D, their Adam optimizers and the EMA of G (or None), as the checkpoint left them,
    and the checkpoint's step: the run in tinygan's objects, built as its demo builds them.
    """
    # D's BatchNorm as the run's demo decided it: the shared loop's rule, the main demo's own.
    shared_loop = isinstance(config, MnistConfig)
    batchnorm = discriminator_batchnorm(config) if shared_loop else not config.spectral_norm
    G, D = models.mnist_models(config.model, config.z_dim, d_batchnorm=batchnorm, seed=config.seed)
    if config.spectral_norm:  # as the demos build D: its u and v come from the checkpoint
        nn.utils.spectral_norm_layers(D, RandomStreams(config.seed).spectral_norm())
    betas = (config.beta1, config.beta2)
    opt_g = Adam(G.parameters(), lr=config.lr_g, betas=betas)
    opt_d = Adam(D.parameters(), lr=config.lr_d, betas=betas)
    ema = EMA(G, config.ema) if config.ema else None
    extras = load_checkpoint(
        Path(config.out) / "checkpoint.npz",
        generator=G, discriminator=D, opt_g=opt_g, opt_d=opt_d,
        **({} if ema is None else {"generator_ema": ema.model}),
    )  # fmt: skip
    return G, D, opt_g, opt_d, ema, int(extras["step"])


class ContinuedRun(Run):
    """A tinygan Run whose networks train in PyTorch.

    Before each record that reads the networks (a grid, a checkpoint, scores) it calls
    ``pull``, which copies PyTorch's weights, buffers and Adam state into tinygan's objects.
    """

    def __init__(self, *args: Any, pull: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pull = pull

    def save_samples(self, step: int, sampler: Any = None, **kwargs: Any) -> Path:
        self.pull()
        return super().save_samples(step, sampler, **kwargs)

    def save_checkpoint(self) -> None:
        self.pull()
        super().save_checkpoint()

    def evaluate(self, step: int, sampler: Any) -> Any:
        self.pull()
        return super().evaluate(step, sampler)


@torch.no_grad()
def ema_update(average: torch.nn.Module, live: torch.nn.Module, decay: float) -> None:
    """theta_ema <- decay theta_ema + (1 - decay) theta, buffers copied (tinygan/ema.py)."""
    for a, p in zip(average.parameters(), live.parameters()):
        a -= (1.0 - decay) * (a - p)
    for a, b in zip(average.buffers(), live.buffers()):
        a.copy_(b)


def main() -> None:
    flags = parse_config(ContinueConfig)
    config = run_settings(Path(flags.out), flags.steps)
    with usage_errors():
        rank, world, device = start_processes(flags.device)
        if config.batch_size % world:
            raise ValueError(
                f"the run's batch of {config.batch_size} does not split into {world} equal "
                f"shares: use a number of processes that divides {config.batch_size}"
            )
    distributed = dist.is_initialized()
    d_loss_fn, g_loss_fn, logits = LOSSES[getattr(config, "loss", "lsgan")]

    # The run in tinygan, then the same run in PyTorch: the networks, the optimizers with
    # their moments and step counts, the EMA of G. Every process reads the checkpoint.
    G, D, opt_g, opt_d, ema, start = load_tinygan_run(config)
    tG, tD = to_torch(G).to(device), to_torch(D).to(device)
    topt_g, topt_d = adam_to_torch(opt_g, G, tG), adam_to_torch(opt_d, D, tD)
    tema = None if ema is None else to_torch(ema.model).to(device)
    # DDP averages the gradients over the processes during backward. It does not copy
    # process 0's buffers before each forward pass: D runs twice before its backward pass,
    # and a copy in between would change BatchNorm statistics that backward still needs.
    G_, D_ = tG, tD
    if distributed:
        ids = [device.index] if device.type == "cuda" else None
        G_ = DistributedDataParallel(tG, device_ids=ids, **NO_BUFFER_SYNC)
        D_ = DistributedDataParallel(tD, device_ids=ids, **NO_BUFFER_SYNC)

    def pull() -> None:
        """PyTorch's state into tinygan's G, D, optimizers and EMA (for the Run's records)."""
        for ours, theirs in ((G, tG), (D, tD)) + (() if ema is None else ((ema.model, tema),)):
            ours.load_state_dict({k: v.cpu().numpy() for k, v in theirs.state_dict().items()})
        opt_g.load_state_dict(adam_from_torch(topt_g, tG, G).state_dict())
        opt_d.load_state_dict(adam_from_torch(topt_d, tD, D).state_dict())

    # The same batches and noise as tinygan: each a pure function of (seed, step).
    streams = RandomStreams(config.seed)
    noise = streams.batchnorm_noise(config.z_dim)  # the EMA's BatchNorm statistics, below
    batchnorm_noise = [torch.from_numpy(z).to(device) for z in noise]
    with usage_errors():  # a data folder without the digits: one line
        root = config.data_root or None
        log = print if rank == 0 else None
        if distributed and rank != 0:  # process 0 downloads the digits (once), the rest wait
            dist.barrier()
        try:
            images = data.load_training_images(config.dataset, root, config.download, log)
        finally:  # released also when it fails: the others then stop on their own error
            if distributed and rank == 0:
                dist.barrier()
        loader = data.BatchLoader(images, config.batch_size, seed=config.seed)
    if rank == 0:  # process 0 keeps the records, in the run's folder
        backend = f" ({dist.get_backend()})" if distributed else ""
        print(
            f"PyTorch {torch.__version__}: {world} process(es) on {device.type}{backend}, "
            f"{config.batch_size // world} images of each batch per process"
        )
        sampler = G if ema is None else ema.model  # tinygan's copy draws the grids
        run = ContinuedRun(
            config, G, D, opt_g, opt_d, ema=ema, streams=streams, stream=sys.stdout, pull=pull
        )
        steps = run.steps()  # from the checkpoint's step; writes config.json
    else:
        steps = range(start + 1, config.steps + 1)

    def share(batch: np.ndarray) -> torch.Tensor:
        """This process's rows of a batch (or of its noise): rows [rank m, (rank + 1) m)."""
        m = len(batch) // world
        return torch.from_numpy(batch[rank * m : (rank + 1) * m]).to(device)

    k, n = getattr(config, "d_steps", 1), config.batch_size
    for step in steps:
        for j in range(k):  # k = 1 in mnist_lsgan.py
            real = share(loader.batch(step * k + j))  # (n / world, 1, 28, 28) real digits
            z = share(streams.noise(step, n, config.z_dim, j))  # (n / world, z_dim)
            with torch.set_grad_enabled(j == k - 1):  # only the last fakes train G
                fake = G_(z)
            # Discriminator: D(x) -> 1, D(G(z)) -> 0; fake.detach(): this update leaves G alone.
            real_scores, fake_scores = D_(real), D_(fake.detach())  # (n / world, 1) each
            d_loss = d_loss_fn(real_scores, fake_scores)
            topt_d.zero_grad()
            d_loss.backward()  # with DDP: the gradients averaged over the processes
            topt_d.step()
        d_norm = gradient_norm(tD)  # before G's backward adds to D's .grad
        # Generator, through D's own module: the G update needs no averaged D gradients.
        g_loss = g_loss_fn(tD(fake))
        topt_g.zero_grad()
        g_loss.backward()
        topt_g.step()
        if tema is not None:
            ema_update(tema, tG, config.ema)  # θ_ema <- decay θ_ema + (1 - decay) θ_G

        if logits:  # the mean scores as probabilities, as tinygan logs them
            real_scores, fake_scores = torch.sigmoid(real_scores), torch.sigmoid(fake_scores)
        numbers = torch.stack([d_loss, g_loss, real_scores.mean(), fake_scores.mean()]).detach()
        if distributed:  # the means over the whole batch
            dist.all_reduce(numbers)
            numbers /= world
        if rank > 0:
            continue
        d, g, d_real, d_fake = numbers.tolist()
        norms = dict(g_grad_norm=gradient_norm(tG).item(), d_grad_norm=d_norm.item())
        run.log(step, d_loss=d, g_loss=g, d_real=d_real, d_fake=d_fake, **norms)
        if run.due(step, config.sample_every):
            if tema is not None:  # BatchNorm's statistics under the averaged weights
                update_bn(batchnorm_noise, tema)
            run.save_samples(step, sampler)  # samples/step_XXXXXX.png
        if run.due(step, config.checkpoint_every):
            run.save_checkpoint()  # checkpoint.npz in tinygan's format, losses.csv/png
        if run.due(step, config.eval_every):
            if tema is not None:
                update_bn(batchnorm_noise, tema)
            run.evaluate(step, sampler)  # metrics.csv
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    run_main(main)  # a mistake (no run folder, no checkpoint, another demo's run): one line
