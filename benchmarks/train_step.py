"""Time whole GAN training steps, tinygan against PyTorch with the same networks and data.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/train_step.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        python benchmarks/train_step.py                 # both libraries on one thread
    python benchmarks/train_step.py --device cuda   # CuPy against PyTorch CUDA

(``env -u`` drops settings that force NumPy's OpenBLAS onto older kernels, for this command
only; the script prints the kernel that ran.) Three steps, the two frameworks in one
process with the same thread count, timed by the protocol of :mod:`benchmarks.common`:
alternating blocks of ``--block`` steps, the first of each block untimed, medians of at
least ``--timed`` timed steps each:

* DCGAN-28 LSGAN (the reference model of CONTRIBUTING.md), batch 64: one D update + one G
  update.
* WGAN-GP critic update on DCGAN-28's critic (no BatchNorm), batch 64: the loss plus the
  gradient penalty, whose gradient is a double backward.
* MLP GAN (noise 96 -> 1024 -> 1024 -> 784; 784 -> 256 -> 256 -> 1), batch 128: one D
  update + one G update with the non-saturating BCE loss.

Both frameworks start from the same weights (tinygan's, copied into PyTorch through the
state dicts, whose keys and layouts match) and see the same batches and noise. FLOPs are
counted as 2 x multiply-adds of every linear/conv layer, x3 for a forward + backward pass
(the usual rule; tinygan skips some of that work, such as D's weight gradients in the G
update, so its share of the machine's peak is a conservative figure). The peak is the
float32 NumPy matrix product of two 2048 x 2048 matrices, measured in the same run.
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
from benchmarks.common import BLOCK, TIMED, alternating_medians, frameworks, print_environment
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
        elif isinstance(layer, (nn.Flatten, nn.Unflatten)):
            shape = tuple(layer(tg.Tensor(np.zeros((1, *shape[1:]), np.float32))).shape)
            shape = (n, *shape[1:])
    return total


# ------------------------------------------------------------------------- the steps
class Case:
    """A training step in both frameworks plus what is needed to report it."""

    def __init__(self, name, batch, g, d, loss, z_dim, flops):
        self.name, self.batch, self.g, self.d = name, batch, g, d
        self.loss, self.z_dim, self.flops = loss, z_dim, flops


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
    return [
        Case("DCGAN-28 LSGAN step (batch 64)", 64, g28, d28, "lsgan", 100, dcgan),
        Case("WGAN-GP critic step (batch 64)", 64, g28, critic, "wgan-gp", 100, wgan),
        Case("MLP GAN step (batch 128)", 128, g_mlp, d_mlp, "gan", 96, mlp),
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
        if family.critic:  # the critic update alone, with the gradient penalty
            with tg.no_grad():
                fake = g(z)
            return d_step(d, opt_d, family.d_loss, real, fake, 10.0, gp_rng).loss.data
        fake = g(z)
        d_step(d, opt_d, family.d_loss, real, fake.detach())
        return g_step(d, opt_g, family.g_loss, fake).data

    return step


def torch_modules(torch, case: Case, device: str):
    """PyTorch twins of the case's networks, loaded with tinygan's weights."""
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
            with torch.no_grad():
                fake = g(z)
            eps = torch.rand(real.shape[0], 1, 1, 1, device=device)
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(d(x_hat).sum(), [x_hat], create_graph=True)
            penalty = 10.0 * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            loss = d(fake).mean() - d(real).mean() + penalty
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
            return loss
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
    rng = np.random.default_rng(seed)

    def draw():
        idx = rng.integers(0, len(images), case.batch)
        z = rng.standard_normal((case.batch, case.z_dim), dtype=np.float32)
        return images[idx], z

    return draw


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
    args = parser.parse_args()

    torch, sync_tg, sync_torch = frameworks(args.device)
    from tinygan.data import images_to_float, load_mnist_or_bundled

    images = images_to_float(load_mnist_or_bundled(download=False)[0][:2048])[:, None]
    peak = print_environment(args.device, torch)
    print(
        f"device: {args.device}; medians of at least {args.timed} timed steps, in alternating "
        f"blocks of {args.block} (the first untimed)\n"
    )
    print(
        "| step | tinygan ms | steps/s | torch ms | steps/s | tinygan/torch | "
        "GFLOP/step | tinygan % of peak | tinygan peak MB |"
    )
    print("|" + "---|" * 9)
    for case in make_cases(np.random.default_rng(0)):
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
