"""Fast paths of two elementwise-and-product ops: MatMul's layouts, LeakyReLU's passes.

Each class here is the lesson op of :mod:`tinygan.ops` with a faster forward or a faster
first-order backward; the numbers are the same (see each docstring for why), and whenever
a graph is recorded the backward is the lesson op's own.
"""

from __future__ import annotations

from typing import Any

from tinygan import ops
from tinygan.autograd import is_grad_enabled
from tinygan.tensor import Tensor


class MatMul(ops.MatMul):
    """y = a @ b, as :class:`tinygan.ops.MatMul`, in faster memory layouts.

    * An outer product, (..., m, 1) @ (..., 1, n) (a batch of one feature into a Linear
      layer), is the elementwise product a * b: every entry is one product, exactly what
      BLAS computes, which runs this k = 1 case far slower.
    * When b is a transposed view (a Linear layer's W^T, or conv2d's weight rows), dL/db is
      computed as (dL/dy^T @ a)^T: the same sums as a^T @ dL/dy, but the gradient of W
      comes out row-major, the layout in which the optimizer reads it without a copy.
    """

    def forward(self, a, b):
        if a.shape[-1] == 1:  # (..., m, 1) @ (..., 1, n): every entry is one product
            return a * b
        return self.xp.matmul(a, b)

    def backward(self, grad_output):
        a, b = self.inputs
        if not (self.needs_input_grad[1] and a.ndim == b.ndim == 2 and _is_transposed(b.data)):
            return super().backward(grad_output)
        ga = ops.matmul(grad_output, ops.swap_last(b)) if self.needs_input_grad[0] else None
        return ga, ops.swap_last(ops.matmul(ops.swap_last(grad_output), a))  # (g^T a)^T


def _is_transposed(array: Any) -> bool:
    """True for a column-major (Fortran-ordered) matrix that is not also row-major."""
    return array.flags.f_contiguous and not array.flags.c_contiguous


class LeakyReLU(ops.LeakyReLU):
    """y = x if x > 0 else a x, as :class:`tinygan.ops.LeakyReLU`, in fewer memory passes.

    * Forward, for 0 <= a <= 1: y = max(x, a x), the same values (x >= a x exactly when
      x >= 0), and one ``maximum`` into the buffer of a x is over ten times faster than
      ``where`` on NumPy (BENCHMARKS.md: 3.9 -> 0.24 ms on 800K floats).
    * Backward with no graph recorded: dL/dy times the slopes, written into the slopes'
      own buffer, which saves the Mul op and two temporary arrays. With a graph recorded,
      the lesson op's backward (a tinygan Mul by the constant slopes).
    """

    def forward(self, x):
        if 0.0 <= self.slope <= 1.0:
            y = x * self.slope
            return self.xp.maximum(x, y, out=y)
        return super().forward(x)

    def backward(self, grad_output):
        if is_grad_enabled():
            return super().backward(grad_output)
        slopes = self._slopes(self.inputs[0].data)
        slopes *= grad_output.data
        return Tensor(slopes)
