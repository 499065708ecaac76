"""Time conv2d and conv_transpose2d at the DCGAN-28 sizes, tinygan against PyTorch.

    python benchmarks/ops.py                 # CPU; adds PyTorch columns when torch is installed
    python benchmarks/ops.py --device cuda   # CuPy against PyTorch CUDA
    OPENBLAS_NUM_THREADS=1 python benchmarks/ops.py   # both on one thread

Each row is a layer of the DCGAN-28 reference model (CONTRIBUTING.md) at batch 64, timed as
the median of ``--repeats`` runs after a warm-up: the forward pass alone (no graph recorded)
and forward + backward (gradients of input and weight). PyTorch runs with the same number
of threads, interleaved in the same process, on the same data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tinygan as tg
from benchmarks.common import frameworks, median_ms, print_environment
from tinygan import functional as F

# (name, op, input shape, weight shape); every layer uses kernel 4, stride 2, padding 1.
LAYERS = [
    ("D conv1  1->64, 28->14", "conv2d", (64, 1, 28, 28), (64, 1, 4, 4)),
    ("D conv2  64->128, 14->7", "conv2d", (64, 64, 14, 14), (128, 64, 4, 4)),
    ("G convT1 128->64, 7->14", "conv_transpose2d", (64, 128, 7, 7), (128, 64, 4, 4)),
    ("G convT2 64->1, 14->28", "conv_transpose2d", (64, 64, 14, 14), (64, 1, 4, 4)),
]


def time_tinygan(op: str, x: np.ndarray, w: np.ndarray, device: str, sync, repeats: int):
    """(forward ms, forward+backward ms) of tinygan's ``op`` at stride 2, padding 1."""
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

    return median_ms(forward, repeats), median_ms(forward_backward, repeats)


def time_torch(torch, op: str, x: np.ndarray, w: np.ndarray, device: str, sync, repeats: int):
    """(forward ms, forward+backward ms) of PyTorch's ``op`` on the same data."""
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

    return median_ms(forward, repeats), median_ms(forward_backward, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    torch, sync_tg, sync_torch = frameworks(args.device)
    rng = np.random.default_rng(0)
    print_environment(args.device, torch)
    print(f"device: {args.device}, batch 64, median of {args.repeats} runs (ms)\n")
    print("| layer | tinygan fwd | torch fwd | ratio | tinygan fwd+bwd | torch fwd+bwd | ratio |")
    print("|" + "---|" * 7)
    for name, op, x_shape, w_shape in LAYERS:
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = (rng.standard_normal(w_shape) * 0.05).astype(np.float32)
        ours = time_tinygan(op, x, w, args.device, sync_tg, args.repeats)
        theirs = (None, None)
        if torch is not None:
            theirs = time_torch(torch, op, x, w, args.device, sync_torch, args.repeats)
        cells = [name]
        for a, b in zip(ours, theirs):
            cells += [
                f"{a:.2f}",
                "-" if b is None else f"{b:.2f}",
                "-" if b is None else f"{a / b:.2f}",
            ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
