"""Fast paths: every optimisation of a plain composition, in one place, behind one switch.

The lesson files (``ops.py``, ``conv.py``, ``functional.py``, ``nn.py``, ``optim.py``) hold
the plain compositions the tour teaches. Where an optimisation may take over, they show one line::

    if fast.enabled():  # the same product in a faster layout: tinygan/fast/ops.py
        return fast_ops.MatMul()(a, b)

``use_fast_paths(False)`` (or ``--reference`` in every demo) turns every one of them off,
so the code that runs is exactly the composition the tour teaches. Each fast path computes
the same function as its composition; the tests hold every one against it, first and
second order (``tests/test_fast.py``), and a main-demo run with and without them agrees to
float32 rounding.

The rule that keeps them exact: a fast path may keep an input-dependent raw array or skip
a tinygan op only on the **first-order** path (no graph recorded, ``is_grad_enabled()``
False inside backward, which is how plain training runs). Whenever a graph is recorded
(``create_graph=True``, WGAN-GP's penalty) its backward is built from tinygan ops, so the
gradient can be differentiated again.

The optimisations, the identity each uses, and what it saves. Together, on a 2-core CPU
(``benchmarks/fast_paths.py``, BENCHMARKS.md), a DCGAN-28 LSGAN step takes 110 ms with
them and 139 ms without, a WGAN-GP critic step 105 and 114 ms, an MLP GAN step 29 and
33 ms.

=========================  ==========================================  =======================
where                      identity                                    saves
=========================  ==========================================  =======================
``ops.MatMul``             an outer product (k = 1) is an elementwise  BLAS's slow k = 1 case;
                           product; dW = (g^T a)^T when W^T is a view  a copy of every dW
``ops.LeakyReLU``          max(x, a x) for 0 <= a <= 1; first-order    ``where``; the Mul op
                           backward written into the mask's buffer     and two temporaries
``norm.standardize``       one fused op whose first-order backward is  ~10 ops per BatchNorm
                           closed form s (g - E g - xhat E[g xhat])    or LayerNorm layer's
                                                                       backward
``conv.StridedConv2d``     DCGAN's conv (k 4, s 2, p 1): bias added    a bias pass; the
                           in place, dW from the forward's columns     second im2col of x
``conv.SubPixel...``       conv_transpose2d (k 4, s 2, p 1) as four    col2im's 16 strided
                           stride-1 2x2 phases (Shi et al., 2016)      scatter-adds
``upsample_conv``          Upsample(2) + conv 3x3 (s 1, p 1): four     16 multiply-adds, not
                           2x2 convs of the low-res x, one per output  36, per pixel; the
                           phase, kernels summed from the 3x3 taps     upsampled copy: seed
                                                                       001's G 1.11 -> 0.41 s
``spectral_norm``          W / sigma(W) as one op; dL/dW =             7 ops and their
                           (g - <g, W_sn> u v^T) / sigma,              backward per layer per
                           sigma = u^T W v                             forward pass
``optim.adam_step``        Adam's update as whole-buffer passes over   5 temporaries per
                           flat m and v (the moments are their views)  parameter per step
``memory``                 glibc's malloc keeps freed memory           page faults: ~11%
=========================  ==========================================  =======================

The switch is per thread, like ``no_grad``: on by default in every thread.
"""

from __future__ import annotations

import threading


class _ThreadSwitch(threading.local):
    def __init__(self) -> None:  # runs once in each thread that touches it
        self.enabled = True


_switch = _ThreadSwitch()


def enabled() -> bool:
    """True when the fast paths may take over in this thread (the default)."""
    return _switch.enabled


class use_fast_paths:  # lower case: called like a function, also a context manager
    """Turn the fast paths on or off in this thread, at once; as a ``with`` block, restore
    the previous setting at its end.

    Example:
        >>> tinygan.use_fast_paths(False)  # from now on, only the plain compositions
        >>> with tinygan.use_fast_paths(False):  # only inside the block
        ...     y = F.conv2d(x, w, stride=2, padding=1)
    """

    def __init__(self, enabled: bool) -> None:
        self.previous = _switch.enabled
        _switch.enabled = bool(enabled)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc_info: object) -> None:
        _switch.enabled = self.previous
