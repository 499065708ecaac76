"""Time conv2d and conv_transpose2d at the DCGAN-28 sizes, tinygan against PyTorch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/ops.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python benchmarks/ops.py
    python benchmarks/ops.py --device cuda   # CuPy against PyTorch CUDA

Each row is a layer of the DCGAN-28 reference model (CONTRIBUTING.md) at batch 64: the
forward pass alone (no graph recorded) and forward + backward (gradients of input and
weight). PyTorch runs in the same process, with the same number of threads, on the same
data; the four timings of a row are taken by the protocol of :mod:`benchmarks.common`
(alternating blocks of ``--block`` calls, the first untimed, medians of at least
``--timed`` timed calls each). ``--keep-freed-memory`` times tinygan as its training
loops run it, with glibc's malloc keeping freed memory (:mod:`tinygan.fast.memory`):
without it, each large array of a call is fresh pages from the kernel, faulted in again.
"""

from __future__ import annotations

import argparse
import sys
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
from tinygan import functional as F

# (name, op, input shape, weight shape); every layer uses kernel 4, stride 2, padding 1.
LAYERS = [
    ("D conv1  1->64, 28->14", "conv2d", (64, 1, 28, 28), (64, 1, 4, 4)),
    ("D conv2  64->128, 14->7", "conv2d", (64, 64, 14, 14), (128, 64, 4, 4)),
    ("G convT1 128->64, 7->14", "conv_transpose2d", (64, 128, 7, 7), (128, 64, 4, 4)),
    ("G convT2 64->1, 14->28", "conv_transpose2d", (64, 64, 14, 14), (64, 1, 4, 4)),
]


def tinygan_calls(op: str, x: np.ndarray, w: np.ndarray, device: str, sync):
    """(forward, forward+backward) of tinygan's ``op`` at stride 2, padding 1."""
    fn = getattr(F, op)
    xt = tg.tensor(x, requires_grad=True, device=device)
    wt = tg.tensor(w, requires_grad=True, device=device)

    def forward():
        with tg.no_grad():
            fn(xt, wt, stride=2, padding=1)
        sync()

    def forward_backward():
        y = fn(xt, wt, stride=2, padding=1)
        y.backward(y.xp.ones(y.shape, dtype=np.float32))
        xt.grad = wt.grad = None
        sync()

    return forward, forward_backward


def torch_calls(torch, op: str, x: np.ndarray, w: np.ndarray, device: str, sync):
    """(forward, forward+backward) of PyTorch's ``op`` on the same data."""
    fn = getattr(torch.nn.functional, op)
    xq = torch.tensor(x, requires_grad=True, device=device)
    wq = torch.tensor(w, requires_grad=True, device=device)

    def forward():
        with torch.no_grad():
            fn(xq, wq, stride=2, padding=1)
        sync()

    def forward_backward():
        y = fn(xq, wq, stride=2, padding=1)
        y.backward(torch.ones_like(y))
        xq.grad = wq.grad = None
        sync()

    return forward, forward_backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--timed", type=int, default=TIMED, help="timed calls per measurement")
    parser.add_argument("--block", type=int, default=BLOCK, help="calls per block (1st untimed)")
    add_memory_flag(parser)
    args = parser.parse_args()
    malloc = apply_memory_flag(args)

    torch, sync_tg, sync_torch = frameworks(args.device)
    rng = np.random.default_rng(0)
    print_environment(args.device, torch)
    print(
        f"device: {args.device}, batch 64; medians of at least {args.timed} timed calls, in "
        f"alternating blocks of {args.block} (the first untimed), ms; {malloc}\n"
    )
    print("| layer | tinygan fwd | torch fwd | ratio | tinygan fwd+bwd | torch fwd+bwd | ratio |")
    print("|" + "---|" * 7)
    for name, op, x_shape, w_shape in LAYERS:
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = (rng.standard_normal(w_shape) * 0.05).astype(np.float32)
        contenders = dict(
            zip(("ours fwd", "ours fwd+bwd"), tinygan_calls(op, x, w, args.device, sync_tg))
        )
        if torch is not None:
            calls = torch_calls(torch, op, x, w, args.device, sync_torch)
            contenders.update(zip(("torch fwd", "torch fwd+bwd"), calls))
        ms = alternating_medians(contenders, args.timed, args.block)
        cells = [name]
        for part in ("fwd", "fwd+bwd"):
            a, b = ms[f"ours {part}"], ms.get(f"torch {part}")
            cells += [
                f"{a:.2f}",
                "-" if b is None else f"{b:.2f}",
                "-" if b is None else f"{a / b:.2f}",
            ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
