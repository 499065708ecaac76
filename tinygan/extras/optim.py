"""What an optimizer offers beyond its update: state dicts, for checkpoints.

:class:`OptimizerExtras` is a base class of :class:`tinygan.optim.Optimizer`:
``state_dict()`` returns a flat ``{name: number or array}`` dictionary (the format a
checkpoint's ``.npz`` can hold without pickle), and ``load_state_dict`` restores it so that
training resumes exactly where it stopped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.backend import array_module, device_of, is_cupy_array, to_device
from tinygan.tensor import Tensor


class OptimizerExtras:
    """State dicts (see the module docstring); uses ``params``, ``state``,
    ``hyperparameters`` and ``state_names`` of :class:`tinygan.optim.Optimizer`.
    """

    # ------------------------------------------------------------------ state dicts
    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters as Python numbers, and per-parameter state as array copies.

        Keys: the hyperparameter names (``"lr"``, ...) and ``"state.<i>.<name>"`` for
        parameter i (in the order the parameters were given).
        """
        out: dict[str, Any] = {name: getattr(self, name) for name in self.hyperparameters}
        for i, state in enumerate(self.state):
            for name, value in state.items():
                out[f"state.{i}.{name}"] = value if isinstance(value, int) else value.copy()
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state from :meth:`state_dict` (or a checkpoint).

        Arrays are copied to each parameter's device and dtype. Nothing changes unless every
        key is known and every array has its parameter's shape.

        Raises:
            RuntimeError: naming the offending key (and both shapes for a size mismatch).
        """
        name = type(self).__name__
        hyper: dict[str, float] = {}
        state: list[dict[str, Any]] = [{} for _ in self.params]
        for key, value in state_dict.items():
            if key in self.hyperparameters:
                hyper[key] = float(value)
                continue
            parts = key.split(".")
            if (
                len(parts) != 3
                or parts[0] != "state"
                or not parts[1].isdigit()
                or int(parts[1]) >= len(self.params)
                or parts[2] not in self.state_names
            ):
                raise RuntimeError(
                    f"{name}.load_state_dict: unexpected key {key!r} (this optimizer has "
                    f"{len(self.params)} parameters and state {self.state_names})"
                )
            i, entry = int(parts[1]), parts[2]
            if entry == "step":
                state[i][entry] = int(value)
                continue
            p = self.params[i]
            if np.shape(value) != p.shape:
                raise RuntimeError(
                    f"{name}.load_state_dict: size mismatch for {key!r}: the state dict has "
                    f"shape {np.shape(value)}, parameter {i} has shape {p.shape}"
                )
            state[i][entry] = _array_like(value, p.data)
        for i, entries in enumerate(state):
            if entries and set(entries) != set(self.state_names):
                raise RuntimeError(
                    f"{name}.load_state_dict: parameter {i} has state {sorted(entries)}, "
                    f"expected all of {self.state_names}"
                )
        missing = [h for h in self.hyperparameters if h not in hyper]
        if missing:
            raise RuntimeError(f"{name}.load_state_dict: missing hyperparameters {missing}")
        for key, value in hyper.items():
            setattr(self, key, value)
        self.state = state


def _array_like(value: Any, like: Any) -> Any:
    """A fresh copy of ``value`` with ``like``'s dtype, on ``like``'s device."""
    raw = value.data if isinstance(value, Tensor) else value
    if not (isinstance(raw, np.ndarray) or is_cupy_array(raw)):
        raw = np.asarray(raw)
    moved = to_device(raw, device_of(like))
    return array_module(like).array(moved, dtype=like.dtype, copy=True)
