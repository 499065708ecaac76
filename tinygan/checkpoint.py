"""Checkpoints: models and optimizers saved to one ``.npz`` file, without pickle.

A checkpoint is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) whose keys are
``<group>/<key>``: each model or optimizer is saved under the name it was given, with its
``state_dict()`` keys, and plain numbers (a step count, an epoch) are saved at the top::

    save_checkpoint("gan.npz", generator=G, discriminator=D, opt_g=opt_g, opt_d=opt_d, step=500)
    # keys: generator/0.weight, ..., opt_d/state.3.exp_avg_sq, ..., step
    extras = load_checkpoint("gan.npz", generator=G, discriminator=D, opt_g=opt_g, opt_d=opt_d)
    extras["step"]  # 500

:func:`save` and :func:`load` are PyTorch's ``torch.save(model.state_dict(), path)`` and
``torch.load(path)`` for a single state dict, in the same format.

The file is read with ``np.load(allow_pickle=False)``, so opening a checkpoint can never
run code, and any tool that reads ``.npz`` can inspect it. It is written atomically: to a
temporary file in the same directory, flushed to disk, then renamed over the target with
``os.replace``, so a crash mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from tinygan.backend import is_cupy_array, to_device, to_numpy
from tinygan.nn import Module
from tinygan.optim import Optimizer
from tinygan.tensor import Tensor
from tinygan.utils.fileio import atomic_write

Saveable = Module | Optimizer


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable, or does not fit the objects it is loaded into."""


class CheckpointMismatchError(CheckpointError):
    """A readable checkpoint whose entries do not fit the objects it is loaded into: it was
    written by another model, or with other settings (the cure differs from a damaged
    file's, so a caller can tell the two apart).
    """


def _host_array(value: Any) -> np.ndarray:
    """A NumPy copy of an array or a Python number (0-d), for the archive."""
    if isinstance(value, np.ndarray) or is_cupy_array(value):
        return to_numpy(value)
    return np.asarray(value)


def _check_name(name: str) -> None:
    if not name or "/" in name:
        raise ValueError(f"checkpoint entry name {name!r} must be non-empty and contain no '/'")


def save_checkpoint(
    path: str | os.PathLike, **entries: Saveable | int | float | np.ndarray
) -> None:
    """Save models, optimizers and numbers to ``path`` as one ``.npz`` file, atomically.

    Args:
        path: the file to write (used as given; ``.npz`` is not appended).
        **entries: name -> a Module or Optimizer (its ``state_dict()`` is saved under
            ``name/``) or a number or array (saved under ``name``).

    Example:
        >>> save_checkpoint("run/ckpt.npz", model=net, optimizer=opt, step=1200)
    """
    if not entries:
        raise ValueError("save_checkpoint: nothing to save; pass e.g. model=net, optimizer=opt")
    arrays: dict[str, np.ndarray] = {}
    for name, value in entries.items():
        _check_name(name)
        if isinstance(value, (Module, Optimizer)):
            for key, item in value.state_dict().items():
                arrays[f"{name}/{key}"] = _host_array(item)
        else:
            arrays[name] = _host_array(value)
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def save(state_dict: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Save a state dict to a NumPy ``.npz`` file, atomically: ``torch.save``'s habit.

    ``tg.save(model.state_dict(), "generator.npz")``, then
    ``model.load_state_dict(tg.load("generator.npz"))``. The file holds one array per
    key, copied to the host, and never a pickle: a model is saved as its state dict, not
    as an object. For a whole training run (models, optimizers and the step) in one file,
    see :func:`save_checkpoint`.

    Args:
        state_dict: key -> array (NumPy or CuPy), Tensor or number, e.g.
            ``model.state_dict()`` or ``optimizer.state_dict()``.
        path: the file to write; its name must end in ``.npz``.

    Raises:
        TypeError: ``state_dict`` is not a mapping of string keys to arrays or numbers.
        ValueError: ``path`` does not end in ``.npz``.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"save: expected a state dict (key -> array), got {type(state_dict).__name__}; "
            "to save a model, pass model.state_dict()"
        )
    if not os.fspath(path).endswith(".npz"):
        raise ValueError(
            f"save: writes a NumPy .npz archive, so name the file *.npz, got {os.fspath(path)!r}"
        )
    arrays = {}
    for key, value in state_dict.items():
        array = _host_array(value.data if isinstance(value, Tensor) else value)
        if not isinstance(key, str) or array.dtype.kind not in "biuf":
            raise TypeError(
                f"save: entry {key!r} must have a string key and an array or number value "
                f"(no pickled objects), got a {type(value).__name__}"
            )
        arrays[key] = array
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load(path: str | os.PathLike, map_location: str | None = None) -> dict[str, Any]:
    """The state dict saved by :func:`save` at ``path``: key -> array, ``torch.load``'s habit.

    Args:
        path: an ``.npz`` file.
        map_location: "cpu" or "cuda" to put the arrays there; None: NumPy arrays
            (``load_state_dict`` moves them to the model's device anyway).

    Raises:
        FileNotFoundError: there is no file at ``path``.
        CheckpointError: the file is not a readable ``.npz`` archive of arrays (an empty
            file, a ``.npy``, a pickle, a PyTorch checkpoint, ...: see
            :func:`read_checkpoint`); the message says what it is.
    """
    arrays = read_checkpoint(path)
    if map_location is None:
        return arrays
    return {key: to_device(array, map_location) for key, array in arrays.items()}


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array in the checkpoint at ``path``, by key (``"model/0.weight"``, ``"step"``).

    Only a NumPy ``.npz`` archive of ``.npy`` arrays is read. Anything else is refused
    before NumPy sees it, with what it is and what to do: an empty file, a single ``.npy``
    array, a pickle, a PyTorch checkpoint (a zip holding a pickle), another zip archive, an
    archive cut short. So the result never holds raw bytes (NumPy returns the bytes of a
    zip member that is not ``.npy``), and no error comes from inside NumPy.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        CheckpointError: the file is not a complete ``.npz`` archive of arrays; the message
            says what it is.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path!r} is not a readable checkpoint: it is a folder")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        if not head.startswith(_ZIP_MAGIC):
            raise CheckpointError(f"{path!r} is not a readable checkpoint: {_not_a_zip(head)}")
        try:
            with zipfile.ZipFile(path) as archive:
                members = archive.namelist()
        except zipfile.BadZipFile as err:
            raise CheckpointError(
                f"{path!r} is not a readable checkpoint: it is cut short or damaged (a zip "
                f"archive of {os.path.getsize(path)} bytes without its directory: {err})"
            ) from err
        _check_members(path, members)
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except PermissionError as err:  # the file may be fine: say what stopped the reading
        raise CheckpointError(f"{path!r} could not be read: {err.strerror}") from err
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as err:
        raise CheckpointError(
            f"{path!r} is not a readable checkpoint (corrupt, truncated or not an .npz "
            f"archive): {type(err).__name__}: {err}"
        ) from err


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry; an empty zip's directory
_NPY_MAGIC = b"\x93NUMPY"


def _not_a_zip(head: bytes) -> str:
    """What a file that begins with ``head`` is, since it is no zip (so no ``.npz``)."""
    if not head:
        return "it is empty (0 bytes)"
    if head.startswith(_NPY_MAGIC):
        return (
            "it is a single NumPy array (.npy, as np.save writes), not an .npz archive of "
            "named arrays: read it with np.load, save state dicts with tg.save"
        )
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return (
            "it is a Python pickle (pickle.dump, or torch.save's legacy format), which "
            "tinygan never opens, since unpickling can run any code"
        )
    return f"it is not an .npz archive (those are zip files): it begins with the bytes {head!r}"


def _check_members(path: str, members: list[str]) -> None:
    """Refuse the zip archive at ``path`` unless it is an ``.npz`` of ``.npy`` arrays."""
    if any(name == "data.pkl" or name.endswith("/data.pkl") for name in members):
        raise CheckpointError(
            f"{path!r} is not a readable checkpoint: it is a PyTorch checkpoint (torch.save's zip "
            "archive, which holds a pickle that tinygan never opens, since unpickling can run "
            "any code). In PyTorch, save its arrays with np.savez(path, **{k: v.cpu().numpy() "
            "for k, v in state_dict.items()}) and load that"
        )
    others = [name for name in members if not name.endswith(".npy")]
    if others:
        shown = ", ".join(map(repr, others[:3])) + (", ..." if len(others) > 3 else "")
        raise CheckpointError(
            f"{path!r} is not a readable checkpoint: it is a zip archive but no .npz of NumPy "
            f"arrays ({len(others)} of its {len(members)} files are not .npy: {shown})"
        )


def load_checkpoint(path: str | os.PathLike, **objects: Saveable) -> dict[str, Any]:
    """Load the named models and optimizers from ``path``, in place; return the numbers.

    Each object is loaded strictly from the ``name/`` entries: keys missing from the file,
    keys the object does not have, or shapes that differ fail with a message that counts
    each kind and names up to three of each, with both shapes. Groups not asked for are
    ignored (load just a generator from a full GAN checkpoint).

    Args:
        path: a file written by :func:`save_checkpoint`.
        **objects: name -> the Module or Optimizer to fill, by the names used when saving.

    Returns:
        The top-level entries: 0-d arrays as Python numbers, others as arrays.

    Raises:
        CheckpointError: the file is unreadable (see :func:`read_checkpoint`).
        CheckpointMismatchError: an entry is missing or does not fit its object.
    """
    arrays = read_checkpoint(path)
    for name, obj in objects.items():
        _check_name(name)
        if not isinstance(obj, (Module, Optimizer)):
            raise TypeError(f"load_checkpoint: {name!r} must be a Module or an Optimizer")
        prefix = name + "/"
        state = {key[len(prefix) :]: a for key, a in arrays.items() if key.startswith(prefix)}
        if not state:
            groups = sorted({key.split("/")[0] for key in arrays if "/" in key})
            raise CheckpointMismatchError(
                f"{os.fspath(path)!r} has no entry {name!r}; it has {groups}"
            )
        misfit = _misfit(state, obj) if isinstance(obj, Module) else ""
        if misfit:
            raise CheckpointMismatchError(f"{os.fspath(path)!r}, entry {name!r}: {misfit}")
        try:
            obj.load_state_dict(state)
        except RuntimeError as err:
            message = f"{os.fspath(path)!r}, entry {name!r}: {err}"
            raise CheckpointMismatchError(message) from err
    return {key: (a.item() if a.ndim == 0 else a) for key, a in arrays.items() if "/" not in key}


def _misfit(state: Mapping[str, Any], model: Module) -> str:
    """Why ``state`` does not fit ``model`` ("" when it does): how many keys are missing,
    unexpected or of another shape, with a few of each.

    A checkpoint of another model differs in tens of keys; naming every one would make a
    message of thousands of characters, where the counts and three examples each say it.
    """
    shapes = {key: np.shape(array) for key, array in model.state_dict().items()}
    missing = [f"{k!r} {shapes[k]}" for k in shapes if k not in state]
    unexpected = [f"{k!r} {np.shape(state[k])}" for k in state if k not in shapes]
    reshaped = [
        f"{k!r} {np.shape(state[k])} -> {shapes[k]}"
        for k in shapes
        if k in state and np.shape(state[k]) != shapes[k]
    ]
    parts = [
        f"{len(found)} {'key' if len(found) == 1 else 'keys'} {what} ("
        + ", ".join(found[:3])
        + (", ...)" if len(found) > 3 else ")")
        for what, found in (
            ("of the model missing from the file", missing),
            ("the model does not have", unexpected),
            ("of another shape, the file's -> the model's", reshaped),
        )
        if found
    ]
    if not parts:
        return ""
    model_is = f"a {type(model).__name__} of {len(shapes)} arrays"
    return f"does not fit the model ({model_is}), it holds another: " + "; ".join(parts)
