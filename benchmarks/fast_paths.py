"""What the fast paths save: each training step with tinygan.fast on, and with --reference.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/fast_paths.py

The steps of ``benchmarks/train_step.py`` (the DCGAN-28 LSGAN step of the main demo, the
WGAN-GP critic step with the penalty's double backward, the MLP GAN step), each timed with
the fast paths on and with ``use_fast_paths(False)``, the plain compositions the tour
teaches, in one process and in alternating blocks (the protocol of benchmarks/common.py).
Both contenders start from the same weights and draw the same batches. The main demo's
step (spectral norm in D) has a third contender, every fast path on but spectral norm's
fused op (:mod:`tinygan.fast.spectral_norm`), whose hook then runs the composition: what
that one op saves.
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
from benchmarks.train_step import data_source, make_cases, tinygan_step
from tinygan import nn
from tinygan.data import images_to_float, load_mnist_or_bundled
from tinygan.fast.memory import keep_freed_memory


def with_fast_paths(enabled: bool, step):
    def run():
        with tg.use_fast_paths(enabled):
            step()

    return run


def composed_spectral_norm(step):
    """``step`` with every fast path on except spectral norm's: its hook composes W / sigma."""
    normalize = nn.SpectralNorm.normalize

    def composed(self, module, power_iteration):
        with tg.use_fast_paths(False):
            normalize(self, module, power_iteration)

    def run():
        nn.SpectralNorm.normalize = composed
        try:
            step()
        finally:
            nn.SpectralNorm.normalize = normalize

    return run


def has_spectral_norm(model) -> bool:
    return any(
        isinstance(h, nn.SpectralNorm) for m in model.modules() for h in m._forward_pre_hooks
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timed", type=int, default=TIMED, help="timed steps per contender")
    parser.add_argument("--block", type=int, default=BLOCK, help="steps per block (1st untimed)")
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
    composed = []
    for case in make_cases(np.random.default_rng(0)):
        reference_case = copy.deepcopy(case)
        contenders = {
            "fast": with_fast_paths(True, tinygan_step(case, "cpu", data_source(case, images, 1))),
            "reference": with_fast_paths(
                False, tinygan_step(reference_case, "cpu", data_source(case, images, 1))
            ),
        }
        if has_spectral_norm(case.d):
            composed_case = copy.deepcopy(case)
            contenders["composed"] = composed_spectral_norm(
                tinygan_step(composed_case, "cpu", data_source(case, images, 1))
            )
        ms = alternating_medians(contenders, args.timed, args.block)
        print(
            f"| {case.name} | {ms['fast']:.1f} | {ms['reference']:.1f} | "
            f"{ms['reference'] / ms['fast']:.2f} |"
        )
        if "composed" in ms:
            composed.append((case.name, ms["fast"], ms["composed"]))
    for name, fused, plain in composed:
        print(
            f"\n{name}, every fast path but spectral norm's: {plain:.1f} ms; the fused op "
            f"saves {plain - fused:.1f} ms ({1 - fused / plain:.0%})"
        )


if __name__ == "__main__":
    main()
