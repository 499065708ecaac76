"""tinygan: a small, readable deep-learning library for training GANs.

import tinygan as tg
from tinygan import functional as F

x = tg.tensor([[1.0, 2.0]], requires_grad=True)
loss = F.tanh(x).sum()
loss.backward()
"""

# tensor first: it finishes the Tensor class before the modules that build Tensors load.
from tinygan.tensor import Tensor  # isort: skip
from tinygan import init, losses, nn, optim
from tinygan.autograd import Function, enable_grad, grad, is_grad_enabled, no_grad
from tinygan.backend import cuda_available
from tinygan.checkpoint import load, load_checkpoint, save, save_checkpoint
from tinygan.extras.creation import (
    full,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from tinygan.fast import use_fast_paths
from tinygan.gradcheck import gradcheck, gradgradcheck

__version__ = "0.5.0"

__all__ = [
    "Function",
    "Tensor",
    "cuda_available",
    "enable_grad",
    "full",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "init",
    "is_grad_enabled",
    "load",
    "load_checkpoint",
    "losses",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "optim",
    "rand",
    "randn",
    "save",
    "save_checkpoint",
    "tensor",
    "use_fast_paths",
    "zeros",
    "zeros_like",
]
