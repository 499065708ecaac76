"""What the fast paths save: each training step with tinygan.fast on, and with --reference.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/fast_paths.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/fast_paths.py --seed001

The steps of ``benchmarks/train_step.py`` (the DCGAN-28 LSGAN step of the main demo, the
WGAN-GP critic step with the penalty's double backward, the MLP GAN step), each timed with
the fast paths on and with ``use_fast_paths(False)``, the plain compositions the tour
teaches, in one process and in alternating blocks (the protocol of benchmarks/common.py).
Both contenders start from the same weights and draw the same batches. A step whose D has
spectral norm (the main demo's) or LayerNorm (seed 001's critic, with ``--seed001``) has a
third contender, every fast path on but that one's fused op
(:mod:`tinygan.fast.spectral_norm`, :func:`tinygan.fast.norm.standardize`), which then
runs the composition: what that one op saves.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tinygan as tg
from benchmarks.common import BLOCK, TIMED, alternating_medians, print_environment
from benchmarks.train_step import data_source, folder_case, make_cases, tinygan_step
from tinygan import functional as F
from tinygan import nn
from tinygan.data import images_to_float, load_mnist_or_bundled
from tinygan.fast.memory import keep_freed_memory


def with_fast_paths(enabled: bool, step):
    def run():
        with tg.use_fast_paths(enabled):
            step()

    return run


def one_composed(step, owner, name: str):
    """``step`` with every fast path on except inside ``owner.<name>`` (a function or a
    method), which runs the plain composition."""
    fused = getattr(owner, name)

    def composed(*args, **kwargs):
        with tg.use_fast_paths(False):
            return fused(*args, **kwargs)

    def run():
        setattr(owner, name, composed)
        try:
            step()
        finally:
            setattr(owner, name, fused)

    return run


def single_fast_path(model) -> tuple[str, object, str] | None:
    """Which fused op to time on its own in ``model``: spectral norm's or LayerNorm's."""
    layers = list(model.modules())
    if any(isinstance(h, nn.SpectralNorm) for m in layers for h in m._forward_pre_hooks):
        return "spectral norm", nn.SpectralNorm, "normalize"
    if any(isinstance(m, nn.LayerNorm) for m in layers):
        return "LayerNorm", F, "layer_norm"  # nn.LayerNorm calls F.layer_norm
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timed", type=int, default=TIMED, help="timed steps per contender")
    parser.add_argument("--block", type=int, default=BLOCK, help="steps per block (1st untimed)")
    parser.add_argument(
        "--seed001", action="store_true", help="add seed 001's 64 px step (about 2 s a step)"
    )
    args = parser.parse_args()
    images = images_to_float(load_mnist_or_bundled(download=False)[0][:2048])[:, None]
    print_environment("cpu")
    keep_freed_memory()  # as the demos do without --reference (both contenders share it)
    print(
        f"medians of at least {args.timed} timed steps, in alternating blocks of {args.block} "
        "(the first untimed); malloc keeps freed memory for both\n"
    )
    print("| step | fast paths ms | --reference ms | reference / fast |")
    print("|---|---:|---:|---:|")
    singles = []
    cases = make_cases(np.random.default_rng(0))
    if args.seed001:
        cases.append(folder_case("seed001-64"))
    for case in cases:
        reference_case = copy.deepcopy(case)
        contenders = {
            "fast": with_fast_paths(True, tinygan_step(case, "cpu", data_source(case, images, 1))),
            "reference": with_fast_paths(
                False, tinygan_step(reference_case, "cpu", data_source(case, images, 1))
            ),
        }
        single = single_fast_path(case.d)
        if single is not None:
            composed_case = copy.deepcopy(case)
            step = tinygan_step(composed_case, "cpu", data_source(case, images, 1))
            contenders["composed"] = one_composed(step, *single[1:])
        ms = alternating_medians(contenders, args.timed, args.block)
        print(
            f"| {case.name} | {ms['fast']:.1f} | {ms['reference']:.1f} | "
            f"{ms['reference'] / ms['fast']:.2f} |"
        )
        if single is not None:
            singles.append((case.name, single[0], ms["fast"], ms["composed"]))
    for name, kind, fused, plain in singles:
        print(
            f"\n{name}, every fast path but {kind}'s: {plain:.1f} ms; its fused op saves "
            f"{plain - fused:.1f} ms ({1 - fused / plain:.0%})"
        )


if __name__ == "__main__":
    main()
