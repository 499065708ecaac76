"""Adam's step alone on the main demo's networks: the lesson's loop, the per-parameter fast
path (``adam_step`` of commit 377eb5a, one reused scratch array) and the flat buffers.

Every parameter of DCGAN-28's G and D gets a random gradient; each variant runs 200
``opt.step()`` calls (fast paths on, except the lesson's) in 5 alternating blocks of 41,
the first call of each block untimed (:func:`benchmarks.common.alternating_medians`).
Prints the median milliseconds per step::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/adam_flat.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tinygan as tg
from benchmarks.common import alternating_medians, print_environment
from tinygan import models, optim
from tinygan.fast import optim as flat

ROOT = Path(__file__).resolve().parent.parent


def _old_fast_optim(commit: str) -> types.ModuleType:
    """``tinygan/fast/optim.py`` as it was at ``commit``, as a module of its own."""
    path = f"{commit}:tinygan/fast/optim.py"
    source = subprocess.run(
        ["git", "show", path], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType("adam_scratch")
    exec(compile(source, path, "exec"), module.__dict__)
    return module


def _stepper(opt: optim.Adam, module: types.ModuleType | None):
    """One ``opt.step()`` with ``module``'s fast path, or the lesson's (``None``)."""

    def step() -> None:
        optim.fast_optim = module or flat  # what Adam.step calls with the fast paths on
        with tg.use_fast_paths(module is not None):
            opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="377eb5a", help="commit of the per-parameter path")
    args = parser.parse_args()
    print_environment("cpu")
    variants = {"lesson": None, "scratch": _old_fast_optim(args.old), "flat": flat}
    G, D = models.mnist_models("dcgan", 100, seed=0)
    rng = np.random.default_rng(0)
    for name, net in (("G", G), ("D", D)):
        params = list(net.parameters())
        for p in params:
            p.grad = tg.Tensor(rng.standard_normal(p.shape).astype(p.dtype))
        contenders = {
            v: _stepper(optim.Adam(params, lr=2e-4, betas=(0.5, 0.9)), module)
            for v, module in variants.items()
        }
        ms = alternating_medians(contenders, timed=200, block=41)
        optim.fast_optim = flat
        size = sum(p.size for p in params)
        row = "  ".join(f"{v} {t:6.3f} ms" for v, t in ms.items())
        print(f"{name} ({len(params)} parameters, {size} floats): {row}")


if __name__ == "__main__":
    main()
