"""What a ``Module`` offers beyond training: state dicts, printing, ``apply``, devices and dtypes.

:class:`ModuleExtras` is a base class of :class:`tinygan.nn.Module`, so every layer has
these methods with PyTorch's names and semantics (``state_dict`` keys such as
``0.weight`` and ``1.running_mean``, ``load_state_dict(strict=...)``, ``apply``,
``to(device)``, ``float``/``double``, ``zero_grad``, a ``repr`` with the parameter
counts). None of them is needed to follow how a GAN learns; :mod:`tinygan.nn` holds what
is. :func:`evaluating` (``nn.evaluating``) is the inference block the records draw with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tinygan.autograd import no_grad
from tinygan.backend import device_of, is_cupy_array, normalize_device, to_device
from tinygan.tensor import Tensor

if TYPE_CHECKING:
    from tinygan.nn import Module


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped: keys absent from either side."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _array_on(value: Any, device: str) -> Any:
    """``value`` (Tensor, array or nested list) as an array on ``device``."""
    raw = value.data if isinstance(value, Tensor) else value
    if not (isinstance(raw, np.ndarray) or is_cupy_array(raw)):
        raw = np.asarray(raw)
    return to_device(raw, device)


def _cast_float(array: Any, dtype: Any) -> Any:
    return array.astype(dtype, copy=False) if array.dtype.kind == "f" else array


class ModuleExtras:
    """State dicts, printing, ``apply``, dtype casts: see the module docstring.

    Uses the registries and traversal of :class:`tinygan.nn.Module` (``named_modules``,
    ``_parameters``, ``_buffers``, ``_apply``).
    """

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every sub-module, then on this module (children first, as PyTorch).

        The PyTorch idiom for custom initialisation, ``model.apply(weights_init)``, where
        ``weights_init(m)`` looks at ``type(m)`` and fills ``m.weight`` (see
        :mod:`tinygan.init`). Returns this module.
        """
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def _named_arrays(self) -> Iterator[tuple[str, Any]]:
        """``(state_dict key, live array)``: each module's parameters, then its buffers."""
        for prefix, module in self.named_modules():
            dot = prefix + "." if prefix else ""
            for name, p in module._parameters.items():
                yield dot + name, p.data
            for name, b in module._buffers.items():
                yield dot + name, b

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """A copy of every parameter and buffer array, keyed as PyTorch keys them.

        The arrays are copies on the module's device, so training on afterwards does not
        change a state dict that was taken earlier.
        """
        return {key: array.copy() for key, array in self._named_arrays()}

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy arrays (or Tensors) from ``state_dict`` into this module's arrays, in place.

        Values are cast to each array's dtype and moved to its device. Nothing is changed
        unless every check passes.

        Args:
            state_dict: key -> array, as made by :meth:`state_dict` or read from a checkpoint.
            strict: fail on keys missing from ``state_dict`` or unknown to this module;
                a shape mismatch always fails.

        Returns:
            The missing and unexpected keys (both empty when ``strict``).

        Raises:
            RuntimeError: naming every offending key, with both shapes where they differ.
        """
        targets = dict(self._named_arrays())
        missing = [key for key in targets if key not in state_dict]
        unexpected = [key for key in state_dict if key not in targets]
        problems = []
        for key, target in targets.items():
            if key in state_dict and np.shape(state_dict[key]) != target.shape:
                problems.append(
                    f"size mismatch for {key!r}: the state dict has shape "
                    f"{np.shape(state_dict[key])}, this model has shape {target.shape}"
                )
        if strict:
            problems += [
                f"missing key {key!r} (this model has it with shape {targets[key].shape})"
                for key in missing
            ]
            problems += [
                f"unexpected key {key!r} with shape {np.shape(state_dict[key])} "
                "(this model has no such entry)"
                for key in unexpected
            ]
        if problems:
            raise RuntimeError(f"load_state_dict for {type(self).__name__}: " + "; ".join(problems))
        for key, target in targets.items():
            if key in state_dict:
                target[...] = _array_on(state_dict[key], device_of(target))
        for p in self.parameters():
            p._mark_changed()  # written into: graphs recorded before refuse to backward
        return IncompatibleKeys(missing, unexpected)

    def _apply(self, fn: Any) -> Module:
        """Replace every parameter array, gradient and buffer by ``fn(array)``, in place."""
        for module in self.modules():
            for p in module._parameters.values():
                p.data = fn(p.data)
                if p.grad is not None:
                    p.grad = Tensor(fn(p.grad.data))
            for name, buffer in module._buffers.items():
                module._buffers[name] = fn(buffer)
        return self

    def to(self, device: str) -> Module:
        """Move every parameter and buffer to ``device`` ("cpu" or "cuda"), in place.

        The Parameter objects stay the same (only their arrays move), but build optimizers
        after moving: their state lives where the parameters were at the first step.

        Raises:
            RuntimeError: "cuda" was asked for and no CUDA GPU is usable.
        """
        device = normalize_device(device)
        return self._apply(lambda array: to_device(array, device))

    def float(self) -> Module:
        """Cast floating-point parameters and buffers to float32, in place."""
        return self._apply(lambda array: _cast_float(array, np.float32))

    def double(self) -> Module:
        """Cast floating-point parameters and buffers to float64 (for gradient checks)."""
        return self._apply(lambda array: _cast_float(array, np.float64))

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """The text between this layer's parentheses in ``repr``: its settings, as PyTorch
        prints them (a layer of one's own may override this).
        """
        for klass in type(self).__mro__:
            describe = _SETTINGS.get((klass.__module__, klass.__name__))
            if describe is not None:
                return describe(self)
        return ""

    def __repr__(self) -> str:
        return "\n".join(self._repr_lines())

    def _repr_lines(self) -> list[str]:
        """``Name(extra)  # shapes: count``, with sub-modules indented below."""
        head = f"{type(self).__name__}({self.extra_repr()}"
        own = ", ".join(f"{name} {p.shape}" for name, p in self._parameters.items())
        total = sum(p.size for p in self.parameters())
        note = f"{own}: {total:,} parameters" if own else f"{total:,} parameters"
        if not self._modules:
            return [head + (f")  # {note}" if own else ")")]
        lines = [head + f"  # {note}"]
        for name, module in self._modules.items():
            child = module._repr_lines()
            lines.append(f"  ({name}): {child[0]}")
            lines.extend("  " + line for line in child[1:])
        return lines + [")"]


def _conv_settings(m: Any) -> str:
    padding = (
        f", output_padding={m.output_padding}" if any(getattr(m, "output_padding", ())) else ""
    )
    return (
        f"{m.in_channels}, {m.out_channels}, kernel_size={m.kernel_size}, stride={m.stride}, "
        f"padding={m.padding}{padding}" + ("" if m.bias is not None else ", bias=False")
    )


# How repr shows the settings of the layers of tinygan.nn, by (module, class name).
_SETTINGS: dict[tuple[str, str], Callable[[Any], str]] = {
    ("tinygan.nn", "Linear"): lambda m: (
        f"in_features={m.in_features}, out_features={m.out_features}, bias={m.bias is not None}"
    ),
    ("tinygan.nn", "Conv2d"): _conv_settings,
    ("tinygan.nn", "ConvTranspose2d"): _conv_settings,
    ("tinygan.nn", "_BatchNorm"): lambda m: f"{m.num_features}, eps={m.eps}, momentum={m.momentum}",
    ("tinygan.nn", "LeakyReLU"): lambda m: f"negative_slope={m.negative_slope}",
    ("tinygan.nn", "Flatten"): lambda m: f"start_dim={m.start_dim}, end_dim={m.end_dim}",
    ("tinygan.nn", "Unflatten"): lambda m: f"dim={m.dim}, unflattened_size={m.unflattened_size}",
}


@contextmanager
def evaluating(module: Module) -> Iterator[Module]:
    """``with nn.evaluating(model):`` inference: eval mode and no graph, then back.

    Eval mode makes BatchNorm use its running statistics and Dropout pass inputs through;
    ``no_grad`` records nothing. The module's mode before the block is restored after it,
    also when the block raises.
    """
    was_training = module.training
    module.eval()
    try:
        with no_grad():
            yield module
    finally:
        module.train(was_training)
