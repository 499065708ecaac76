"""Time whole GAN training steps, tinygan against PyTorch with the same networks and data.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/train_step.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/train_step.py \
        --cases folder32 folder64 seed001-64            # the image-folder workloads
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/train_step.py --cases all
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        python benchmarks/train_step.py                 # both libraries on one thread
    python benchmarks/train_step.py --device cuda   # CuPy against PyTorch CUDA

(``env -u`` drops settings that force NumPy's OpenBLAS onto older kernels, for this command
only; the script prints the kernel that ran.) Training steps, the two frameworks in one
process with the same thread count, timed by the protocol of :mod:`benchmarks.common`:
alternating blocks of ``--block`` steps, the first of each block untimed, medians of at
least ``--timed`` timed steps each. ``--cases`` picks them by name; without it the four
MNIST-sized steps run (under a minute on 2 cores), and ``--cases all`` adds the three
image-folder steps (about 5 minutes more: a 64 px step takes 1.5 to 2 s):

* ``dcgan28``: DCGAN-28 LSGAN (the reference model of CONTRIBUTING.md), batch 64: one D
  update + one G update.
* ``wgan-gp28``: WGAN-GP critic update on DCGAN-28's critic (no BatchNorm), batch 64: the
  loss plus the gradient penalty, whose gradient is a double backward.
* ``mlp``: MLP GAN (noise 96 -> 1024 -> 1024 -> 784; 784 -> 256 -> 256 -> 1), batch 128:
  one D update + one G update with the non-saturating BCE loss.
* ``main``: the step of ``demos/mnist_lsgan.py``: DCGAN-28 LSGAN, batch 32, D spectrally
  normalised (its power iteration at each of D's three forward passes) without BatchNorm.
* ``folder32``: the image-folder DCGAN of ``demos/image_folder_dcgan.py`` (the DCGAN
  paper's networks, :func:`tinygan.models.dcgan_generator` and
  :func:`~tinygan.models.dcgan_discriminator` with BatchNorm, width 64, z in R^100, 3
  channels) at 32 px, batch 64: one D update + one G update with the non-saturating BCE
  loss (the demo's default ``--loss gan``).
* ``folder64``: the same at 64 px (the shoes and cat-faces seeds' size).
* ``seed001-64``: seed 001's model at 64 px, batch 32:
  :func:`tinygan.models.upsample_generator` (nearest-neighbour x2 + 3x3 conv per doubling,
  z in R^128, width 64) against the demo's WGAN-GP critic (``--loss wgan-gp``, whose
  "auto" norm is LayerNorm: ``dcgan_discriminator(64, 3, 64, "layer")``); one critic
  update (loss + gradient penalty, a double backward) on the detached fakes, then one G
  update on the same fakes, as ``tinygan.train`` runs ``--d-steps 1``.

The image-folder steps draw their "real" images uniformly in [-1, 1] (random images of
the right size: no dataset needed; the arithmetic is the same). If a 64 px step takes more
than a second, ``--timed 12`` keeps a run short (say so beside its numbers).

Both frameworks start from the same weights (tinygan's, copied into PyTorch through the
state dicts, whose keys and layouts match: layer by layer below for the MNIST steps, by
:func:`tinygan.bridge.to_torch` for the image-folder ones) and see the same batches and
noise. FLOPs are counted as 2 x multiply-adds of every linear/conv layer as written (an
``Upsample`` + 3x3 conv pair at the doubled size, as PyTorch runs it; tinygan's fused op
does 16/36 of it), x3 for a forward + backward pass (the usual rule; tinygan skips some
of that work, such as D's weight gradients in the G update, so its share of the machine's
peak is a conservative figure, except for the fused upsampling pairs). The peak is the
float32 NumPy matrix product of two 2048 x 2048 matrices, measured in the same run.
``--keep-freed-memory`` times tinygan as its training loops run it, glibc's malloc keeping
freed memory (:mod:`tinygan.fast.memory`), a setting of the whole process that PyTorch's
step runs under too; without it, a large array is fresh pages from the kernel each step.
Memory: the peak of NumPy allocations during one tinygan step (tracemalloc, CPU only);
PyTorch's allocator is invisible to tracemalloc, so no PyTorch figure is given.
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tinygan as tg
from benchmarks.common import (
    BLOCK,
    TIMED,
    add_memory_flag,
    alternating_medians,
    apply_memory_flag,
    frameworks,
    print_environment,
)
from tinygan import models, nn
from tinygan.gan import LOSSES, d_step, g_step
from tinygan.optim import Adam


# ------------------------------------------------------------------------------ FLOPs
def forward_flops(module: nn.Module, x_shape: tuple[int, ...]) -> int:
    """2 x multiply-adds of every Linear / Conv2d / ConvTranspose2d for one forward pass."""
    total, shape = 0, x_shape
    for layer in module:
        n = shape[0]
        if isinstance(layer, nn.Linear):
            o, i = layer.weight.shape
            total += 2 * n * i * o
            shape = (n, o)
        elif isinstance(layer, nn.Conv2d):
            o, c, kh, kw = layer.weight.shape
            s, p = layer.stride[0], layer.padding[0]
            h, w = (shape[2] + 2 * p - kh) // s + 1, (shape[3] + 2 * p - kw) // s + 1
            total += 2 * n * o * h * w * c * kh * kw
            shape = (n, o, h, w)
        elif isinstance(layer, nn.ConvTranspose2d):
            c, o, kh, kw = layer.weight.shape
            s, p = layer.stride[0], layer.padding[0]
            total += 2 * n * c * shape[2] * shape[3] * o * kh * kw
            h, w = (shape[2] - 1) * s - 2 * p + kh, (shape[3] - 1) * s - 2 * p + kw
            shape = (n, o, h, w)
        elif isinstance(layer, (nn.Flatten, nn.Unflatten, nn.Upsample)):
            shape = tuple(layer(tg.Tensor(np.zeros((1, *shape[1:]), np.float32))).shape)
            shape = (n, *shape[1:])
    return total


# ------------------------------------------------------------------------- the steps
class Case:
    """A training step in both frameworks plus what is needed to report it.

    ``image`` is the (C, H, W) of the random real images of an image-folder case (None: the
    MNIST digits); ``g_update`` adds a G update after a WGAN-GP critic update; ``bridge``
    builds the PyTorch twins with :func:`tinygan.bridge.to_torch`.
    """

    def __init__(
        self, name, batch, g, d, loss, z_dim, flops, image=None, g_update=False, bridge=False
    ):
        self.name, self.batch, self.g, self.d = name, batch, g, d
        self.loss, self.z_dim, self.flops = loss, z_dim, flops
        self.image, self.g_update, self.bridge = image, g_update, bridge


MNIST_CASES = ("dcgan28", "wgan-gp28", "mlp", "main")
FOLDER_CASES = ("folder32", "folder64", "seed001-64")


def folder_case(name: str) -> Case:
    """One image-folder case, its networks built as ``demos/image_folder_dcgan.py`` builds
    them (3 channels, width 64), from its own seed."""
    rng = np.random.default_rng(0)
    if name == "seed001-64":
        size, batch, z_dim = 64, 32, 128
        g = models.upsample_generator(size, 3, z_dim, 64, rng=rng)
        d = models.dcgan_discriminator(size, 3, 64, "layer", rng=rng)
        # the critic update's 12 passes of D (as for wgan-gp28), then the G update: G
        # fwd+bwd once (the fakes serve both updates), D fwd+bwd once more.
        flops = 3 * forward_flops(g, (batch, z_dim)) + 15 * forward_flops(d, (batch, 3, size, size))
        title = "seed 001, 64 px: upsample G + LayerNorm critic, WGAN-GP critic + G step (batch 32)"
        return Case(title, batch, g, d, "wgan-gp", z_dim, flops, (3, size, size), True, True)
    size, batch, z_dim = {"folder32": 32, "folder64": 64}[name], 64, 100
    g = models.dcgan_generator(size, 3, z_dim, 64, rng=rng)
    d = models.dcgan_discriminator(size, 3, 64, "batch", rng=rng)
    flops = 3 * forward_flops(g, (batch, z_dim)) + 9 * forward_flops(d, (batch, 3, size, size))
    title = f"image-folder DCGAN {size} px GAN step (batch 64)"
    return Case(title, batch, g, d, "gan", z_dim, flops, (3, size, size), bridge=True)


def select_cases(names: list[str]) -> list[Case]:
    """The cases named (``all``: every one), in the table's order."""
    wanted = set(MNIST_CASES + FOLDER_CASES) if "all" in names else set(names)
    cases = [c for n, c in zip(MNIST_CASES, make_cases(np.random.default_rng(0))) if n in wanted]
    return cases + [folder_case(n) for n in FOLDER_CASES if n in wanted]


def make_cases(rng: np.random.Generator) -> list[Case]:
    g28, d28 = models.dcgan28_generator(100, rng=rng), models.dcgan28_discriminator(rng=rng)
    critic = models.dcgan28_discriminator(batch_norm=False, rng=rng)
    g_mlp, d_mlp = models.mlp_generator(96, rng=rng), models.mlp_discriminator(rng=rng)
    img = (1, 28, 28)
    # passes: LSGAN/GAN step = G fwd+bwd, D 3 forward passes (real, fake, fake for G) each
    # with a backward; WGAN-GP critic step = 2 fwd+bwd passes + the penalty's pass (fwd,
    # bwd, and the double backward, counted as 2 more backward passes).
    dcgan = 3 * forward_flops(g28, (64, 100)) + 9 * forward_flops(d28, (64, *img))
    wgan = forward_flops(g28, (64, 100)) + 12 * forward_flops(critic, (64, *img))
    mlp = 3 * forward_flops(g_mlp, (128, 96)) + 9 * forward_flops(d_mlp, (128, *img))
    # The main demo's step: DCGAN-28 at batch 32, D spectrally normalised in place of BatchNorm.
    g_main = models.dcgan28_generator(100, rng=rng)
    d_sn = models.dcgan28_discriminator(batch_norm=False, rng=rng)
    main = 3 * forward_flops(g_main, (32, 100)) + 9 * forward_flops(d_sn, (32, *img))
    nn.utils.spectral_norm_layers(d_sn, rng)
    return [
        Case("DCGAN-28 LSGAN step (batch 64)", 64, g28, d28, "lsgan", 100, dcgan),
        Case("WGAN-GP critic step (batch 64)", 64, g28, critic, "wgan-gp", 100, wgan),
        Case("MLP GAN step (batch 128)", 128, g_mlp, d_mlp, "gan", 96, mlp),
        Case("main demo step (batch 32, SN)", 32, g_main, d_sn, "lsgan", 100, main, bridge=True),
    ]


def tinygan_step(case: Case, device: str, data: Callable) -> Callable[[], None]:
    """The step as the demos run it: :func:`tinygan.gan.d_step` and :func:`~tinygan.gan.g_step`."""
    g, d = case.g.to(device), case.d.to(device)
    opt_g = Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    family = LOSSES[case.loss]
    gp_rng = np.random.default_rng(1)

    def step():
        real_np, z_np = data()
        real, z = tg.Tensor(real_np).to(device), tg.Tensor(z_np).to(device)
        if family.critic and not case.g_update:  # the critic update alone, with the penalty
            with tg.no_grad():
                fake = g(z)
            return d_step(d, opt_d, family.d_loss, real, fake, 10.0, gp_rng).loss.data
        if family.critic:  # a critic update with the penalty, then a G update (train.py's)
            fake = g(z)
            d_step(d, opt_d, family.d_loss, real, fake.detach(), 10.0, gp_rng)
            return g_step(d, opt_g, family.g_loss, fake).data
        fake = g(z)
        d_step(d, opt_d, family.d_loss, real, fake.detach())
        return g_step(d, opt_g, family.g_loss, fake).data

    return step


def torch_modules(torch, case: Case, device: str):
    """PyTorch twins of the case's networks, loaded with tinygan's weights."""
    if case.bridge:
        from tinygan.bridge import to_torch

        return to_torch(case.g).to(device), to_torch(case.d).to(device)
    tnn = torch.nn

    def twin(module: nn.Module):
        layers = []
        for layer in module:
            kind = type(layer).__name__
            if kind == "Linear":
                o, i = layer.weight.shape
                layers.append(tnn.Linear(i, o))
            elif kind == "Conv2d":
                o, c, k, _ = layer.weight.shape
                layers.append(tnn.Conv2d(c, o, k, layer.stride, layer.padding))
            elif kind == "ConvTranspose2d":
                c, o, k, _ = layer.weight.shape
                layers.append(tnn.ConvTranspose2d(c, o, k, layer.stride, layer.padding))
            elif kind in ("BatchNorm1d", "BatchNorm2d"):
                layers.append(getattr(tnn, kind)(layer.weight.shape[0]))
            elif kind == "LeakyReLU":
                layers.append(tnn.LeakyReLU(layer.negative_slope))
            elif kind == "Unflatten":
                layers.append(tnn.Unflatten(layer.dim, layer.unflattened_size))
            else:
                layers.append(getattr(tnn, kind)())
        twin_module = tnn.Sequential(*layers)
        state = {k: torch.tensor(np.asarray(tg.Tensor(v).numpy())) for k, v in
                 module.state_dict().items()}  # fmt: skip
        twin_module.load_state_dict(state)
        return twin_module.to(device)

    return twin(case.g), twin(case.d)


def torch_step(torch, case: Case, device: str, data: Callable) -> Callable[[], None]:
    g, d = torch_modules(torch, case, device)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = torch.nn.functional.binary_cross_entropy_with_logits

    def d_loss_fn(real, fake):
        if case.loss == "lsgan":
            return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()
        return bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))

    def g_loss_fn(fake):
        if case.loss == "lsgan":
            return 0.5 * ((fake - 1) ** 2).mean()
        return bce(fake, torch.ones_like(fake))

    def step():
        real_np, z_np = data()
        real = torch.from_numpy(real_np).to(device)
        z = torch.from_numpy(z_np).to(device)
        if case.loss == "wgan-gp":
            if case.g_update:
                fake = g(z)
                fake_d = fake.detach()
            else:
                with torch.no_grad():
                    fake = fake_d = g(z)
            eps = torch.rand(real.shape[0], 1, 1, 1, device=device)
            x_hat = (eps * real + (1 - eps) * fake_d).requires_grad_(True)
            (grad,) = torch.autograd.grad(d(x_hat).sum(), [x_hat], create_graph=True)
            penalty = 10.0 * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            loss = d(fake_d).mean() - d(real).mean() + penalty
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
            if not case.g_update:
                return loss
            opt_g.zero_grad()
            g_loss = -d(fake).mean()
            g_loss.backward()
            opt_g.step()
            return g_loss
        fake = g(z)
        opt_d.zero_grad()
        d_loss_fn(d(real), d(fake.detach())).backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = g_loss_fn(d(fake))
        g_loss.backward()
        opt_g.step()
        return g_loss

    return step


def data_source(case: Case, images: np.ndarray, seed: int) -> Callable:
    """Batches of ``images`` (or, for an image-folder case, of random images uniform in
    [-1, 1] of its size) and their noise, the same sequence for every ``seed``."""
    rng = np.random.default_rng(seed)
    if case.image is not None:
        images = random_images(case.image)

    def draw():
        idx = rng.integers(0, len(images), case.batch)
        z = rng.standard_normal((case.batch, case.z_dim), dtype=np.float32)
        return images[idx], z

    return draw


def random_images(shape: tuple[int, int, int], count: int = 256) -> np.ndarray:
    """``count`` images of ``shape``, uniform in [-1, 1] (float32), from a fixed seed."""
    rng = np.random.default_rng(2)
    return rng.uniform(-1.0, 1.0, (count, *shape)).astype(np.float32)


def peak_numpy_mb(step: Callable[[], object]) -> float:
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--timed", type=int, default=TIMED, help="timed steps per framework")
    parser.add_argument("--block", type=int, default=BLOCK, help="steps per block (1st untimed)")
    parser.add_argument(
        "--cases",
        nargs="+",
        default=list(MNIST_CASES),
        choices=[*MNIST_CASES, *FOLDER_CASES, "all"],
        metavar="NAME",
        help=f"steps to time, of {', '.join(MNIST_CASES + FOLDER_CASES)}, or all "
        f"(default: {' '.join(MNIST_CASES)})",
    )
    add_memory_flag(parser)
    args = parser.parse_args()
    malloc = apply_memory_flag(args)

    torch, sync_tg, sync_torch = frameworks(args.device)
    from tinygan.data import images_to_float, load_mnist_or_bundled

    cases = select_cases(args.cases)
    if any(case.image is None for case in cases):
        images = images_to_float(load_mnist_or_bundled(download=False)[0][:2048])[:, None]
    else:  # only image-folder cases: they draw random images, no MNIST needed
        images = np.zeros((1, 1, 28, 28), np.float32)
    peak = print_environment(args.device, torch)
    print(
        f"device: {args.device}; medians of at least {args.timed} timed steps, in alternating "
        f"blocks of {args.block} (the first untimed); {malloc}\n"
    )
    print(
        "| step | tinygan ms | steps/s | torch ms | steps/s | tinygan/torch | "
        "GFLOP/step | tinygan % of peak | tinygan peak MB |"
    )
    print("|" + "---|" * 9)
    for case in cases:
        contenders = {
            "tinygan": synced(
                tinygan_step(case, args.device, data_source(case, images, 1)), sync_tg
            )
        }
        if torch is not None:
            dev = "cuda" if args.device == "cuda" else "cpu"
            contenders["torch"] = synced(
                torch_step(torch, case, dev, data_source(case, images, 1)), sync_torch
            )
        memory_ours = peak_numpy_mb(contenders["tinygan"]) if args.device == "cpu" else float("nan")
        ms = alternating_medians(contenders, args.timed, args.block)
        ms_ours, ms_theirs = ms["tinygan"], ms.get("torch")
        gflop = case.flops / 1e9
        share = 100 * gflop / (ms_ours / 1000) / peak
        torch_cells = (
            [f"{ms_theirs:.1f}", f"{1000 / ms_theirs:.2f}", f"{ms_ours / ms_theirs:.2f}"]
            if ms_theirs
            else ["-", "-", "-"]
        )
        print(
            f"| {case.name} | {ms_ours:.1f} | {1000 / ms_ours:.2f} | "
            + " | ".join(torch_cells)
            + f" | {gflop:.2f} | {share:.0f}% | {memory_ours:.0f} |"
        )


def synced(step: Callable[[], object], sync: Callable[[], None]) -> Callable[[], None]:
    """``step`` followed by ``sync`` (waiting for a GPU's queued work), as one timed unit."""

    def run() -> None:
        step()
        sync()

    return run


if __name__ == "__main__":
    main()
