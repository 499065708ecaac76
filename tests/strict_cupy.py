"""A strict stand-in for CuPy, so that tinygan's GPU path runs in the tests of every CPU.

Most machines that run the suite have no GPU; without this module, CuPy's path would run
on none of them. It is a test helper, which the library never imports; the
``device`` fixture (tests/conftest.py) installs it for one test at a time, as the
``strict`` device. NumPy's own ``array_api_strict`` is the model: a namespace that refuses
whatever the real target would refuse, computing with NumPy underneath. CuPy's own
sources (``cupy/_core/core.pyx``, ``_kernel.pyx``, ``_scalar.pyx``) are the reference for
every rule below.

What it checks, as CuPy would:

* **Its own array type.** :class:`ndarray` lives in a module named as CuPy's
  (``cupy._core.core``), so ``tinygan.backend`` takes it for a device array; it holds a
  NumPy array that only this module touches.
* **No implicit conversion to NumPy.** ``np.asarray(a)``, ``np.array(a)``,
  ``a.__array__()`` raise CuPy's ``TypeError`` ("Implicit conversion to a NumPy array is
  not allowed..."); ``a.get()`` and ``asnumpy(a)`` are the explicit ways, and copy.
* **No host arrays in device operations.** A ``numpy.ndarray`` in an operator, a ufunc
  (``out=`` too), an item assignment or any function of the namespace raises CuPy's
  ``TypeError("Unsupported type <class 'numpy.ndarray'>")``. Python and NumPy scalars are
  fine, with CuPy's (NEP 50) rules: a Python scalar takes the array's dtype, a NumPy scalar
  keeps its own. NumPy integer and boolean arrays are fine as indices (CuPy copies them
  over). ``asarray`` and ``array`` copy host data to the device: a device array never
  shares memory with a host one.
* **NumPy functions dispatch only where CuPy has them.** ``np.f(a)`` on stand-in arrays
  alone calls this namespace's ``f`` (``__array_function__``, ``__array_ufunc__``); where
  the namespace has no ``f``, or a NumPy array is among the arguments, NumPy raises its
  ``TypeError``, as it does for CuPy.
* **Device results.** Reductions give 0-d arrays, not NumPy scalars; indexing with
  integers only (``a[i, j]``) gives a 0-d *view*, which changes when ``a`` does.
* **Dtypes** are booleans, integers, floats and complex numbers (no object or string
  arrays).
* **Host synchronisations are counted** (:func:`syncs`): ``float()``, ``int()``,
  ``complex()``, ``bool()``, ``.item()``, ``.tolist()``, ``.get()``, ``asnumpy``,
  ``repr``/``str``/``format``, pickling, and the operations whose output size CuPy reads
  back from the device (``nonzero``, ``flatnonzero``, ``unique``, boolean-mask indexing).
  So are the copies of host arrays to the device (:func:`transfers`): ``asarray`` of
  host data, host index arrays. One number is none: CuPy fills it in with a kernel.

What it offers is a subset of what CuPy offers, listed in ``UFUNCS``, ``FUNCTIONS``,
``HOST_FUNCTIONS``, ``SYNCING_FUNCTIONS``, ``CREATION``, ``DTYPES``, ``METHODS`` and the
``random``, ``cuda``, ``lib.stride_tricks`` and ``cupyx`` namespaces below; a name CuPy
has that tinygan starts to use is added to the list (after checking that CuPy has it).

What it cannot check: speed, CUDA kernels and their numerics, memory limits, streams,
CuPy's quirks it does not model (an out-of-range integer index wraps around on CuPy, where
NumPy and the stand-in raise), or CUDA's own errors. A run on a real GPU is still needed
(CONTRIBUTING.md).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

IMPLICIT_CONVERSION = (
    "Implicit conversion to a NumPy array is not allowed. "
    "Please use `.get()` to construct a NumPy array explicitly."
)

# ------------------------------------------------------------------------------ counting

_syncs: list[str] = []
_transfers: list[str] = []
_HERE = str(Path(__file__).resolve())


def _caller() -> str:
    """``file:line`` of the first frame outside this file: the code that asked."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == _HERE:
        frame = frame.f_back
    return "?" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _sync(kind: str) -> None:
    """Record one host synchronisation (the host waits for the device)."""
    _syncs.append(f"{kind} at {_caller()}")


def _transfer(kind: str) -> None:
    """Record one copy of host data (more than one number) to the device."""
    _transfers.append(f"{kind} at {_caller()}")


def syncs() -> list[str]:
    """Every host synchronisation since :func:`reset_counts`, oldest first, as
    ``"<kind> at <file>:<line>"``."""
    return list(_syncs)


def transfers() -> list[str]:
    """Every host-to-device copy of an array since :func:`reset_counts` (a number, which
    CuPy writes with a kernel, is none), as ``"<kind> at <file>:<line>"``."""
    return list(_transfers)


def reset_counts() -> None:
    """Forget the synchronisations and transfers counted so far."""
    _syncs.clear()
    _transfers.clear()


# ------------------------------------------------------------------------------ arguments

_PYTHON_SCALARS = (bool, int, float, complex)


def _unsupported(value: Any) -> TypeError:
    return TypeError(f"Unsupported type {type(value)}")


def _device_value(value: Any) -> Any:
    """``value`` for NumPy underneath: stand-in arrays unwrapped (recursively in lists and
    tuples); Python and NumPy scalars, dtypes and the like as they are; a NumPy array or
    any other object refused, as CuPy refuses them."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, (list, tuple)):
        return type(value)(_device_value(v) for v in value)
    if value is None or value is Ellipsis or isinstance(value, (slice, str, np.dtype, type)):
        return value
    if isinstance(value, (*_PYTHON_SCALARS, np.generic)):
        return value
    raise _unsupported(value)


def _device_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: _device_value(v) for k, v in kwargs.items()}


def _index(key: Any) -> Any:
    """An index for NumPy underneath; NumPy integer and boolean arrays are allowed (CuPy
    copies them to the device). A boolean mask makes CuPy read its count back: a sync."""
    parts = key if isinstance(key, tuple) else (key,)
    out = []
    for p in parts:
        if isinstance(p, ndarray):
            p = p._a
        elif isinstance(p, list):
            p = np.asarray(_device_value(p))
            _transfer("index")
        elif not (isinstance(p, np.ndarray) or p is None or p is Ellipsis):
            if not isinstance(p, (slice, int, np.integer, np.bool_)):
                raise IndexError(
                    "only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) "
                    f"and integer or boolean arrays are valid indices, got {type(p)}"
                )
        elif isinstance(p, np.ndarray) and p.ndim > 0:
            _transfer("index")
        if isinstance(p, np.ndarray) and p.dtype == bool and p.ndim > 0:
            _sync("boolean-mask index")
        out.append(p)
    return tuple(out) if isinstance(key, tuple) else out[0]


def _check_dtype(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind not in "biufc":
        raise ValueError(f"Unsupported dtype {array.dtype}")
    return array


def _wrap(result: Any) -> Any:
    """NumPy's result as CuPy's: arrays wrapped, scalars as 0-d arrays, tuples element-wise."""
    if isinstance(result, np.ndarray):
        return ndarray._from_numpy(_check_dtype(result))
    if isinstance(result, np.generic):
        return ndarray._from_numpy(_check_dtype(np.asarray(result)))
    if isinstance(result, (tuple, list)):
        return type(result)(_wrap(r) for r in result)
    return result


# ------------------------------------------------------------------------------ ufuncs


def _apply_ufunc(ufunc: np.ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
    """``ufunc`` (or its ``method``: reduce, at, ...) on stand-in arrays and scalars."""
    outs = kwargs.get("out")
    if outs is not None and not isinstance(outs, tuple):
        outs = (outs,)
    for value in inputs + (outs or ()):
        if not isinstance(value, (ndarray, *_PYTHON_SCALARS, np.generic)):
            raise _unsupported(value)
    if method == "at":  # ufunc.at(a, index, values): the index may be a host array
        a, index, *values = inputs
        getattr(ufunc, method)(a._a, _index(index), *(_device_value(v) for v in values))
        return None
    kw = _device_kwargs(kwargs)
    if outs is not None:
        kw["out"] = tuple(o._a for o in outs)
    result = getattr(ufunc, method)(*(_device_value(v) for v in inputs), **kw)
    if outs is not None:
        return outs[0] if len(outs) == 1 else outs
    return _wrap(result)


class ufunc:
    """A NumPy ufunc on stand-in arrays: ``f(...)``, ``f.reduce``, ``f.at``, ``f.outer``."""

    def __init__(self, numpy_ufunc: np.ufunc) -> None:
        self._ufunc = numpy_ufunc
        self.__name__ = numpy_ufunc.__name__
        self.nin, self.nout = numpy_ufunc.nin, numpy_ufunc.nout

    def __call__(self, *inputs: Any, **kwargs: Any) -> Any:
        return _apply_ufunc(self._ufunc, "__call__", inputs, kwargs)

    def reduce(self, *inputs: Any, **kwargs: Any) -> Any:
        return _apply_ufunc(self._ufunc, "reduce", inputs, kwargs)

    def accumulate(self, *inputs: Any, **kwargs: Any) -> Any:
        return _apply_ufunc(self._ufunc, "accumulate", inputs, kwargs)

    def outer(self, *inputs: Any, **kwargs: Any) -> Any:
        return _apply_ufunc(self._ufunc, "outer", inputs, kwargs)

    def at(self, *inputs: Any) -> None:
        _apply_ufunc(self._ufunc, "at", inputs, {})

    def __repr__(self) -> str:
        return f"<ufunc '{self.__name__}'>"


# ------------------------------------------------------------------------------ the array


class Flags:
    """CuPy's ``ndarray.flags``: ``c_contiguous``, ``f_contiguous``, ``owndata``."""

    def __init__(self, array: np.ndarray) -> None:
        self.c_contiguous = bool(array.flags.c_contiguous)
        self.f_contiguous = bool(array.flags.f_contiguous)
        self.owndata = bool(array.flags.owndata)

    def __getitem__(self, name: str) -> bool:
        keys = {"C_CONTIGUOUS": "c_contiguous", "F_CONTIGUOUS": "f_contiguous"}
        return getattr(self, keys.get(name, name.lower()))


class Device:
    """``cupy.cuda.Device``: the one device of the stand-in, number 0."""

    def __init__(self, device: int = 0) -> None:
        if int(device) != 0:
            raise ValueError(f"the stand-in has one device, 0, not {device}")
        self.id = 0

    def synchronize(self) -> None:
        _sync("Device.synchronize")

    def use(self) -> None:
        pass

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("Device", self.id))

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


def _binary_operators(numpy_ufunc: np.ufunc) -> tuple[Callable, Callable, Callable]:
    """``a op b``, ``b op a`` and ``a op= b`` for one ufunc, following CuPy's operators: a
    stand-in array or a scalar is computed with, a NumPy array refused, anything else
    (a tinygan Tensor...) left to its own reflected operator."""

    def forward(self: ndarray, other: Any) -> Any:
        if not isinstance(other, (ndarray, np.ndarray, *_PYTHON_SCALARS, np.generic)):
            return NotImplemented
        return _apply_ufunc(numpy_ufunc, "__call__", (self, other), {})

    def reflected(self: ndarray, other: Any) -> Any:
        if not isinstance(other, (ndarray, np.ndarray, *_PYTHON_SCALARS, np.generic)):
            return NotImplemented
        return _apply_ufunc(numpy_ufunc, "__call__", (other, self), {})

    def in_place(self: ndarray, other: Any) -> ndarray:
        return _apply_ufunc(numpy_ufunc, "__call__", (self, other), {"out": (self,)})

    return forward, reflected, in_place


class ndarray:  # CuPy's name
    """A device array of the stand-in: a NumPy array behind CuPy's rules (module docstring).

    ``ndarray(shape, dtype)`` makes an uninitialised array, as CuPy's constructor does.
    """

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100  # CuPy's: a Tensor (1000) wins the reflected operators
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, shape: Any, dtype: Any = float) -> None:
        self._a = _check_dtype(np.empty(shape, dtype=dtype))

    @classmethod
    def _from_numpy(cls, array: np.ndarray) -> ndarray:
        out = object.__new__(cls)
        out._a = array
        return out

    # -------------------------------------------------------------- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    T = property(lambda self: ndarray._from_numpy(self._a.T))
    mT = property(lambda self: ndarray._from_numpy(self._a.mT))
    real = property(lambda self: ndarray._from_numpy(self._a.real))
    imag = property(lambda self: ndarray._from_numpy(self._a.imag))
    flags = property(lambda self: Flags(self._a))
    device = property(lambda self: Device(0))

    @property
    def base(self) -> ndarray | None:
        """The array this one is a view of (None when it owns its memory), as in CuPy."""
        base = self._a.base
        return ndarray._from_numpy(base) if isinstance(base, np.ndarray) else base

    # -------------------------------------------------------------- NumPy's protocols
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(IMPLICIT_CONVERSION)

    def __array_ufunc__(self, numpy_ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any):
        if numpy_ufunc.__name__ not in UFUNCS:
            return NotImplemented
        return _apply_ufunc(numpy_ufunc, method, inputs, kwargs)

    def __array_function__(self, func: Callable, types_: tuple, args: tuple, kwargs: dict):
        if not all(issubclass(t, ndarray) for t in types_):
            return NotImplemented  # a NumPy array among the arguments: NumPy raises
        namespace: Any = cupy
        for part in func.__module__.split(".")[1:]:
            namespace = getattr(namespace, part, None)
        target = getattr(namespace, func.__name__, None)
        if target is None:
            return NotImplemented  # CuPy has it, perhaps, but the stand-in does not list it
        return target(*args, **kwargs)

    # -------------------------------------------------------------- host synchronisations
    def get(self, stream: Any = None, order: str = "C", out: Any = None) -> np.ndarray:
        """A host NumPy copy (a synchronisation)."""
        _sync("get()")
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def item(self) -> Any:
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        _sync("item()")
        return self._a.item()

    def tolist(self) -> Any:
        _sync("tolist()")
        return self._a.tolist()

    def __float__(self) -> float:
        _sync("float()")
        return float(self._a)

    def __int__(self) -> int:
        _sync("int()")
        return int(self._a)

    def __complex__(self) -> complex:
        _sync("complex()")
        return complex(self._a)

    def __bool__(self) -> bool:
        if self.size == 1:
            _sync("bool()")
            return bool(self._a)
        if self.size == 0:
            return False
        raise ValueError(
            "The truth value of an array with more than one element is ambiguous. "
            "Use a.any() or a.all()"
        )

    def __repr__(self) -> str:
        _sync("repr()")
        return repr(self._a)

    def __str__(self) -> str:
        _sync("str()")
        return str(self._a)

    def __format__(self, spec: str) -> str:
        _sync("format()")
        return format(self._a, spec)

    def __reduce__(self) -> tuple:
        return array, (self.get(),)

    # -------------------------------------------------------------- containers, copies
    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    def __getitem__(self, key: Any) -> ndarray:
        index = _index(key)
        result = self._a[index]
        if isinstance(result, np.generic):  # integers only: CuPy gives a 0-d view
            result = self._a[(*(index if isinstance(index, tuple) else (index,)), Ellipsis)]
        return _wrap(result)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[_index(key)] = _device_value(value)

    def __copy__(self) -> ndarray:
        return self.copy()

    def __deepcopy__(self, memo: dict) -> ndarray:
        return self.copy()

    # -------------------------------------------------------------- operators
    def __neg__(self) -> ndarray:
        return _apply_ufunc(np.negative, "__call__", (self,), {})

    def __pos__(self) -> ndarray:
        return _apply_ufunc(np.positive, "__call__", (self,), {})

    def __abs__(self) -> ndarray:
        return _apply_ufunc(np.absolute, "__call__", (self,), {})

    def __invert__(self) -> ndarray:
        return _apply_ufunc(np.invert, "__call__", (self,), {})

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        if other is None:
            return cupy.zeros(self.shape, dtype=bool)
        return _binary_operators(np.equal)[0](self, other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        if other is None:
            return cupy.ones(self.shape, dtype=bool)
        return _binary_operators(np.not_equal)[0](self, other)

    __add__, __radd__, __iadd__ = _binary_operators(np.add)
    __sub__, __rsub__, __isub__ = _binary_operators(np.subtract)
    __mul__, __rmul__, __imul__ = _binary_operators(np.multiply)
    __truediv__, __rtruediv__, __itruediv__ = _binary_operators(np.true_divide)
    __floordiv__, __rfloordiv__, __ifloordiv__ = _binary_operators(np.floor_divide)
    __mod__, __rmod__, __imod__ = _binary_operators(np.remainder)
    __pow__, __rpow__, __ipow__ = _binary_operators(np.power)
    __and__, __rand__, __iand__ = _binary_operators(np.bitwise_and)
    __or__, __ror__, __ior__ = _binary_operators(np.bitwise_or)
    __xor__, __rxor__, __ixor__ = _binary_operators(np.bitwise_xor)
    __matmul__, __rmatmul__, _ = _binary_operators(np.matmul)
    __lt__ = _binary_operators(np.less)[0]
    __le__ = _binary_operators(np.less_equal)[0]
    __gt__ = _binary_operators(np.greater)[0]
    __ge__ = _binary_operators(np.greater_equal)[0]
    del _


# The methods of CuPy's ndarray the stand-in offers (CuPy's ndarray has each of them).
METHODS = (
    "all", "any", "argmax", "argmin", "argsort", "astype", "clip", "conj", "copy", "cumsum",
    "diagonal", "dot", "fill", "flatten", "max", "mean", "min", "prod", "ravel", "repeat",
    "reshape", "round", "sort", "squeeze", "std", "sum", "swapaxes", "take", "trace",
    "transpose", "var", "view",
)  # fmt: skip


def _method(name: str) -> Callable:
    def method(self: ndarray, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self._a, name)(*_device_value(args), **_device_kwargs(kwargs))
        return _wrap(result)

    method.__name__ = method.__qualname__ = name
    return method


def _nonzero(self: ndarray) -> tuple[ndarray, ...]:
    """The indices of the non-zero elements (CuPy reads their count back: a sync)."""
    if self.ndim == 0:
        raise ValueError("Calling nonzero on 0d arrays is not allowed.")
    _sync("nonzero()")
    return _wrap(self._a.nonzero())


for _name in METHODS:
    setattr(ndarray, _name, _method(_name))
ndarray.nonzero = _nonzero
ndarray.__module__ = "cupy._core.core"  # where CuPy's ndarray lives: a device array


# ------------------------------------------------------------------------------ the namespace

# Elementwise functions (NumPy's ufuncs; CuPy has each under the same name).
UFUNCS = (
    "absolute", "add", "arccos", "arcsin", "arctan", "arctan2", "arctanh", "bitwise_and",
    "bitwise_not", "bitwise_or", "bitwise_xor", "ceil", "cos", "cosh", "divide", "equal",
    "exp", "exp2", "expm1", "floor", "floor_divide", "fmax", "fmin", "greater",
    "greater_equal", "hypot", "invert", "isfinite", "isinf", "isnan", "less", "less_equal",
    "log", "log10", "log1p", "log2", "logaddexp", "logaddexp2", "logical_and", "logical_not",
    "logical_or", "logical_xor", "matmul", "maximum", "minimum", "multiply", "negative",
    "not_equal", "positive", "power", "reciprocal", "remainder", "rint", "sign", "signbit",
    "sin", "sinh", "sqrt", "square", "subtract", "tan", "tanh", "true_divide", "trunc",
)  # fmt: skip

# Functions of device arrays that give device arrays.
FUNCTIONS = (
    "all", "allclose", "amax", "amin", "any", "argmax", "argmin", "argsort", "array_equal",
    "array_split", "ascontiguousarray", "asfortranarray", "atleast_1d", "atleast_2d",
    "broadcast_arrays", "broadcast_to", "clip", "concatenate", "copy", "count_nonzero",
    "cumprod", "cumsum", "diagonal", "dot", "einsum", "empty_like", "expand_dims", "flip",
    "full_like", "inner", "isclose", "max", "mean", "min", "moveaxis",
    "nan_to_num", "ones_like", "outer", "pad", "prod", "ravel", "repeat", "reshape", "roll",
    "round", "sort", "split", "squeeze", "stack", "std", "sum", "swapaxes", "take",
    "take_along_axis", "tensordot", "tile", "trace", "transpose", "tril", "triu", "var",
    "vstack", "where", "zeros_like",
)  # fmt: skip

# Functions that answer on the host without reading device data (shapes, memory, dtypes).
HOST_FUNCTIONS = (
    "broadcast_shapes", "can_cast", "may_share_memory", "ndim", "result_type", "shape",
    "shares_memory", "size",
)  # fmt: skip

# Functions whose output size CuPy reads back from the device: each call is a sync.
SYNCING_FUNCTIONS = ("flatnonzero", "nonzero", "unique")

# Creation from shapes and numbers (no array argument).
CREATION = ("arange", "empty", "eye", "full", "identity", "linspace", "ones", "zeros")

# Dtypes and constants: CuPy re-exports NumPy's.
DTYPES = (
    "bool_", "complex64", "complex128", "dtype", "e", "finfo", "float16", "float32",
    "float64", "floating", "iinfo", "inf", "int8", "int16", "int32", "int64", "integer",
    "issubdtype", "nan", "newaxis", "pi", "uint8", "uint16", "uint32", "uint64",
)  # fmt: skip


def _function(numpy_function: Callable, name: str) -> Callable:
    def function(*args: Any, **kwargs: Any) -> Any:
        return _wrap(numpy_function(*_device_value(args), **_device_kwargs(kwargs)))

    function.__name__ = function.__qualname__ = name
    return function


def _host_function(numpy_function: Callable, name: str) -> Callable:
    def function(*args: Any, **kwargs: Any) -> Any:
        return numpy_function(*_device_value(args), **_device_kwargs(kwargs))

    function.__name__ = function.__qualname__ = name
    return function


def _syncing_function(numpy_function: Callable, name: str) -> Callable:
    def function(*args: Any, **kwargs: Any) -> Any:
        _sync(f"{name}()")
        return _wrap(numpy_function(*_device_value(args), **_device_kwargs(kwargs)))

    function.__name__ = function.__qualname__ = name
    return function


def _host_data(value: Any) -> Any:
    """Host data for ``asarray``: NumPy arrays and scalars, numbers, nested lists (which may
    hold stand-in arrays, as CuPy's may); any other object refused."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, (list, tuple)):
        return [_host_data(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic, *_PYTHON_SCALARS)):
        return value
    raise _unsupported(value)


def asarray(a: Any, dtype: Any = None, order: Any = None) -> ndarray:
    """``a`` on the device: a stand-in array as it is (cast when ``dtype`` differs); host
    data copied over (a device array never shares memory with a host one)."""
    if isinstance(a, ndarray):
        if dtype is None or np.dtype(dtype) == a.dtype:
            return a
        return ndarray._from_numpy(a._a.astype(dtype))
    return _from_host(a, dtype, order or "K")


def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K") -> ndarray:
    """A device array of ``obj`` (a copy unless ``copy=False`` and nothing needs changing)."""
    if isinstance(obj, ndarray) and not copy:
        return asarray(obj, dtype)
    return _from_host(obj, dtype, order)


def _from_host(data: Any, dtype: Any, order: str) -> ndarray:
    """A device copy of host data (a transfer, unless it is one number: CuPy fills those)."""
    host = np.array(np.asarray(_host_data(data), dtype=dtype), order=order, copy=True)
    if host.ndim > 0 and not isinstance(data, ndarray):
        _transfer("asarray")
    return ndarray._from_numpy(_check_dtype(host))


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None) -> np.ndarray:
    """A host NumPy array of ``a`` (a sync for a device array; NumPy data as it is)."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def get_array_module(*args: Any) -> types.ModuleType:
    """This namespace when any argument is a stand-in array, else NumPy."""
    return cupy if any(isinstance(a, ndarray) for a in args) else np


def as_strided(x: ndarray, shape: Any = None, strides: Any = None) -> ndarray:
    """``cupy.lib.stride_tricks.as_strided``: a view of ``x`` with the given shape and strides."""
    if not isinstance(x, ndarray):
        raise _unsupported(x)
    return ndarray._from_numpy(np.lib.stride_tricks.as_strided(x._a, shape, strides))


def scatter_add(a: ndarray, slices: Any, value: Any) -> None:
    """``cupyx.scatter_add``: ``a[slices] += value``, repeated indices adding up."""
    if not isinstance(a, ndarray):
        raise _unsupported(a)
    np.add.at(a._a, _index(slices), _device_value(value))


def _drawn(values: np.ndarray) -> ndarray:
    """Random numbers drawn on the device (by NumPy underneath: not a transfer)."""
    return ndarray._from_numpy(_check_dtype(np.asarray(values)))


class Generator:
    """``cupy.random.Generator`` (from ``default_rng``): NumPy's streams, on the device."""

    def __init__(self, seed: Any = None) -> None:
        self._rng = np.random.default_rng(seed)

    def random(self, size: Any = None, dtype: Any = np.float64) -> ndarray:
        return _drawn(self._rng.random(size, dtype=dtype))

    def standard_normal(self, size: Any = None, dtype: Any = np.float64) -> ndarray:
        return _drawn(self._rng.standard_normal(size, dtype=dtype))

    def uniform(self, low=0.0, high=1.0, size: Any = None, dtype: Any = np.float64) -> ndarray:
        return _drawn(self._rng.uniform(low, high, size).astype(dtype))

    def integers(self, low, high=None, size: Any = None, dtype: Any = np.int64) -> ndarray:
        return _drawn(self._rng.integers(low, high, size, dtype=dtype))


class RandomState(Generator):
    """``cupy.random.RandomState``: the legacy interface, with CuPy's ``dtype`` arguments."""

    def random_sample(self, size: Any = None, dtype: Any = np.float64) -> ndarray:
        return self.random(size, dtype)

    def normal(self, loc=0.0, scale=1.0, size: Any = None, dtype: Any = np.float64) -> ndarray:
        return _drawn(self._rng.normal(loc, scale, size).astype(dtype))

    def rand(self, *size: int, dtype: Any = np.float64) -> ndarray:
        return self.random(size, dtype)

    def randn(self, *size: int, dtype: Any = np.float64) -> ndarray:
        return self.standard_normal(size, dtype)

    def seed(self, seed: Any = None) -> None:
        self._rng = np.random.default_rng(seed)


def _build_random() -> types.ModuleType:
    random = types.ModuleType("cupy.random", "cupy.random: draws on the device")
    state = RandomState()
    random.RandomState, random.Generator = RandomState, Generator
    random.default_rng = Generator
    random.get_random_state = lambda: state
    for name in ("normal", "rand", "randn", "random_sample", "seed", "standard_normal",
                 "uniform"):  # fmt: skip
        setattr(random, name, getattr(state, name))
    random.random = state.random_sample
    return random


def _build_cupy() -> types.ModuleType:
    namespace = types.ModuleType("cupy", "The strict stand-in for CuPy (tests/strict_cupy.py).")
    for name in UFUNCS:
        setattr(namespace, name, ufunc(getattr(np, name)))
    namespace.abs = namespace.absolute
    makers = {_function: FUNCTIONS + CREATION, _host_function: HOST_FUNCTIONS,
              _syncing_function: SYNCING_FUNCTIONS}  # fmt: skip
    for make, names in makers.items():
        for name in names:
            setattr(namespace, name, make(getattr(np, name), name))
    for name in DTYPES:
        setattr(namespace, name, getattr(np, name))
    namespace.ndarray, namespace.ufunc = ndarray, ufunc
    namespace.asarray, namespace.array, namespace.asnumpy = asarray, array, asnumpy
    namespace.get_array_module = get_array_module
    namespace.random = _build_random()
    namespace.lib = types.ModuleType("cupy.lib")
    namespace.lib.stride_tricks = types.ModuleType("cupy.lib.stride_tricks")
    namespace.lib.stride_tricks.as_strided = as_strided
    namespace.cuda = types.ModuleType("cupy.cuda")
    namespace.cuda.Device = Device
    namespace.cuda.runtime = types.ModuleType("cupy.cuda.runtime")
    namespace.cuda.runtime.getDeviceCount = lambda: 1
    return namespace


cupy = _build_cupy()
cupyx = types.ModuleType("cupyx", "The stand-in's cupyx: scatter_add.")
cupyx.scatter_add = scatter_add


def install(monkeypatch: Any) -> None:
    """Make tinygan take this stand-in for CuPy until ``monkeypatch`` undoes it (the end of
    a test): ``tinygan.backend`` finds it as its CuPy module with one device, so "cuda"
    means the stand-in, and ``import cupy`` / ``import cupyx`` give its namespaces.
    Synchronisations and transfers are counted afresh."""
    from tinygan import backend

    monkeypatch.setattr(backend, "_cupy", cupy)
    monkeypatch.setattr(backend, "_cupy_checked", True)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    reset_counts()
