"""A fast path of spectral normalisation: W / sigma(W) as one fused op.

:class:`tinygan.nn.SpectralNorm` composes the normalised weight of seven ops, a transpose
and a reshape (W as the matrix M), two products (sigma = u^T M v), a reshape, a power and
a product (W * sigma^-1), and their backward passes are as many again, at every forward
pass of every normalised layer: three times per layer in a step of the main demo.
:class:`SpectralNormalize` is one op, whose first-order gradient is the composition's bit
for bit per forward pass (BENCHMARKS.md: the main demo's step before and after it).

**The gradient.** u and v are constants of the graph, so sigma = u^T M v is linear in W,
with dsigma/dM = u v^T. With W_sn = W / sigma and g = dL/dW_sn, the quotient rule gives

    dL/dW = g / sigma - <g, W> / sigma^2 * unmat(u v^T)
          = (g - <g, W_sn> unmat(u v^T)) / sigma

where <., .> sums the elementwise product and unmat(.) lays a matrix (h, w) out as W
(the inverse of :meth:`tinygan.nn.SpectralNorm.matrix`).
"""

from __future__ import annotations

from typing import Any

from tinygan import ops
from tinygan.autograd import Function, is_grad_enabled
from tinygan.tensor import Tensor


class SpectralNormalize(Function):
    """W_sn = W / (u^T M v) with M the weight W as the matrix of ``hook.matrix`` (a fused op).

    Forward on arrays. Two backward paths compute dL/dW, like every fused op:

    * a graph is recorded (``create_graph=True``: a penalty differentiates through D):
      the formula of the module docstring, with sigma rebuilt from W with tinygan ops, so
      its own derivative is exact. This is the reference.
    * no graph is recorded (plain training): the first line of the formula on arrays, with
      sigma from the forward pass, each product and sum taken as the composition's ops
      take them, so the gradient of one forward pass is theirs bit for bit. A loss that
      sums several passes (the main demo's D loss: D(x) and D(G(z))) adds their
      gradients in another order than the composition's graph walk, so a float32 run
      rounds otherwise and, as any GAN does with rounding, takes another trajectory
      within a few dozen steps. The tests hold the two paths, and the composition,
      together.

    Args:
        hook: the :class:`tinygan.nn.SpectralNorm` whose ``matrix`` lays W out as (h, w).
        u, v: its power iteration's vectors, (h,) and (w,) arrays: constants of the graph.
    """

    def __init__(self, hook: Any, u: Any, v: Any) -> None:
        self.hook, self.u, self.v = hook, u, v

    def forward(self, weight):
        matrix = self.hook.matrix(weight)  # the composition's order of the two products
        self.sigma = (self.u.reshape(1, -1) @ matrix @ self.v.reshape(-1, 1)).reshape(())
        self.inv_sigma = self.sigma**-1.0
        return weight * self.inv_sigma

    def backward(self, grad_output):
        weight = self.inputs[0]
        if not is_grad_enabled():  # the first-order fast path, on arrays
            # The chain rule in the order the composition's ops apply it (Mul, PowScalar,
            # the two products), so dL/dW is the composition's bit for bit.
            g, w = grad_output.data, weight.data
            along = (g * w).sum(axis=tuple(range(w.ndim)), keepdims=True).reshape(())  # <g, W>
            d_sigma = along * (self.sigma**-2.0 * -1.0)
            d_matrix = self.u.reshape(-1, 1) * (d_sigma.reshape(1, 1) * self.v.reshape(1, -1))
            return Tensor(g * self.inv_sigma + self.unmatrix(d_matrix, w.shape))
        outer = self.unmatrix(self.xp.outer(self.u, self.v), weight.shape)  # dsigma/dW
        u_row, v_col = Tensor(self.u.reshape(1, -1)), Tensor(self.v.reshape(-1, 1))
        matrix = self.hook.matrix(weight)  # the reference: sigma rebuilt from W
        inv_sigma = ops.pow(ops.reshape(ops.matmul(ops.matmul(u_row, matrix), v_col), ()), -1.0)
        along = ops.sum(grad_output * weight)  # <g, W>
        return grad_output * inv_sigma - along * inv_sigma * inv_sigma * Tensor(outer)

    def unmatrix(self, matrix: Any, shape: tuple[int, ...]) -> Any:
        """The (h, w) ``matrix`` laid out as a weight of ``shape``: the inverse of
        ``hook.matrix`` (axis ``hook.dim`` first, the others flattened).
        """
        dim = self.hook.dim
        order = (dim, *(a for a in range(len(shape)) if a != dim))
        permuted = matrix.reshape(tuple(shape[a] for a in order))
        return permuted.transpose(tuple(order.index(a) for a in range(len(shape))))
