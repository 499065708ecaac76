"""The strict CuPy stand-in (tests/strict_cupy.py) refuses what CuPy refuses, and the main
demo's loop waits for the device only to log.

The first half holds the stand-in to CuPy's rules, so that a device test passing on it
means something: each refusal below is one a lax stand-in would miss. The second half
uses it to count what a training step of ``demos/mnist_lsgan.py`` asks of the host.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import strict_cupy
from strict_cupy import cupy as cp
from strict_cupy import cupyx

import tinygan as tg
from tinygan import backend

ROOT = Path(__file__).resolve().parent.parent
UNSUPPORTED = re.escape("Unsupported type <class 'numpy.ndarray'>")
IMPLICIT = re.escape("Implicit conversion to a NumPy array is not allowed")


@pytest.fixture(autouse=True)
def fresh_counts():
    strict_cupy.reset_counts()


def device_array() -> strict_cupy.ndarray:
    return cp.asarray(np.arange(6.0).reshape(2, 3))


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("convert", [np.asarray, np.array, lambda a: a.__array__()])
def test_implicit_conversion_to_numpy_is_refused(convert):
    with pytest.raises(TypeError, match=IMPLICIT):
        convert(device_array())


MIXES = {
    "a + h": lambda a, h: a + h,
    "h * a": lambda a, h: h * a,
    "a -= h": lambda a, h: a.__isub__(h),
    "a @ h": lambda a, h: a @ h.T,
    "cp.add": lambda a, h: cp.add(a, h),
    "np.add": lambda a, h: np.add(a, h),
    "np.exp(out=h)": lambda a, h: np.exp(a, out=h),
    "a[...] = h": lambda a, h: a.__setitem__(Ellipsis, h),
    "cp.where": lambda a, h: cp.where(a > 0, a, h),
    "cp.concatenate": lambda a, h: cp.concatenate([a, h]),
    "cp.matmul": lambda a, h: cp.matmul(a, h.T),
    "cupyx.scatter_add": lambda a, h: cupyx.scatter_add(a, (0,), h[0]),
}


@pytest.mark.parametrize("mix", list(MIXES))
def test_numpy_arrays_in_device_operations_are_refused(mix):
    with pytest.raises(TypeError, match=UNSUPPORTED):
        MIXES[mix](device_array(), np.ones((2, 3)))


def test_numpy_functions_dispatch_only_to_what_the_stand_in_offers():
    a = device_array()
    assert isinstance(np.exp(a), cp.ndarray)  # __array_ufunc__
    assert isinstance(np.concatenate([a, a]), cp.ndarray)  # __array_function__
    with pytest.raises(TypeError, match="no implementation found for 'numpy.median'"):
        np.median(a)  # CuPy has median, but the stand-in does not list it
    with pytest.raises(TypeError, match="no implementation found for 'numpy.concatenate'"):
        np.concatenate([a, np.ones((1, 3))])  # a host array among the arguments
    with pytest.raises(AttributeError):
        cp.median  # noqa: B018


def test_numbers_follow_cupys_dtype_rules():
    """Python numbers take the array's dtype; NumPy scalars keep theirs (NEP 50)."""
    a = cp.ones(3, dtype=np.float32)
    assert (a * 2.0).dtype == (2.0 * a).dtype == (a + True).dtype == np.float32
    assert (a * np.float64(2.0)).dtype == np.float64
    assert (a.astype(np.float64) * np.float32(2.0)).dtype == np.float64
    with pytest.raises(ValueError, match="Unsupported dtype"):
        cp.asarray(np.array(["a", "b"]))


def test_results_stay_on_the_device_and_integer_indexing_gives_a_view():
    a = device_array()
    total, mean, entry = a.sum(), cp.mean(a, axis=0), a[1, 2]
    assert all(isinstance(r, cp.ndarray) for r in (total, mean, entry, a.max(), a[0]))
    assert total.shape == () and entry.shape == ()
    a[1, 2] = 50.0
    assert entry.item() == 50.0  # a 0-d view, as CuPy's a[i, j] is; NumPy's is a copy
    assert a.T.flags.f_contiguous and a.reshape(3, 2).base is not None
    assert a.device.id == 0 and backend.device_of(a) == "cuda:0"


def test_host_data_is_copied_to_and_from_the_device():
    host = np.zeros(3)
    a = cp.asarray(host)
    host[0] = 1.0
    assert a.get()[0] == 0.0  # a device array never shares memory with a host one
    back = a.get()
    back[1] = 2.0
    assert cp.asnumpy(a)[1] == 0.0
    assert cp.asarray(a) is a and cp.asarray(a, dtype=np.float32).dtype == np.float32


# ------------------------------------------------------------------------------ counting

SYNCING = {
    "float": float,
    "int": lambda a: int(a.astype(np.int64)),
    "bool": lambda a: bool(a > 0),
    "item": lambda a: a.item(),
    "tolist": lambda a: a.tolist(),
    "get": lambda a: a.get(),
    "asnumpy": cp.asnumpy,
    "repr": repr,
    "str": str,
    "format": lambda a: f"{a:.3f}",
    "nonzero": lambda a: (a > 0).reshape(1).nonzero(),
    "mask index": lambda a: a.reshape(1)[a.reshape(1) > 0],
}


@pytest.mark.parametrize("what", list(SYNCING))
def test_each_host_synchronisation_is_counted_once_with_its_line(what):
    a = cp.asarray(np.array(2.5)).sum()  # a 0-d device array (made without a sync)
    strict_cupy.reset_counts()
    SYNCING[what](a)
    (sync,) = strict_cupy.syncs()
    assert f" at {__file__}:" in sync, sync  # the line that asked, not the stand-in's


def test_device_work_and_moves_to_the_device_are_no_synchronisation():
    a = device_array()
    b = cp.exp(a) * 2.0 + a.sum(axis=0) - cp.matmul(a, a.T)[0, 0]
    b[0] = b[1]
    cp.concatenate([b.reshape(-1), cp.zeros(2)]).max()
    cp.random.default_rng(0).standard_normal((2, 2), dtype=np.float32)
    assert strict_cupy.syncs() == []


def test_copies_of_host_arrays_are_counted_numbers_are_not():
    a = cp.asarray(np.zeros((2, 3)))  # one transfer
    a * cp.asarray(2.0)  # one number: CuPy fills it in with a kernel, no copy
    a[np.array([0, 1])]  # a host index array, copied over
    cp.random.random((3,))  # drawn on the device
    assert [t.split(" at ")[0] for t in strict_cupy.transfers()] == ["asarray", "index"]


def test_the_namespace_offers_only_what_it_lists():
    listed = set(strict_cupy.UFUNCS + strict_cupy.FUNCTIONS + strict_cupy.HOST_FUNCTIONS)
    listed |= set(strict_cupy.SYNCING_FUNCTIONS + strict_cupy.CREATION + strict_cupy.DTYPES)
    listed |= {"abs", "array", "asarray", "asnumpy", "get_array_module", "ndarray", "ufunc"}
    listed |= {"cuda", "lib", "random"}
    offered = {name for name in vars(cp) if not name.startswith("_")}
    assert offered == listed
    methods = {name for name in vars(cp.ndarray) if not name.startswith("_")}
    properties = {"T", "mT", "base", "device", "dtype", "flags", "imag", "itemsize", "nbytes"}
    properties |= {"ndim", "real", "shape", "size", "strides"}
    assert methods == set(strict_cupy.METHODS) | properties | {"get", "item", "nonzero", "tolist"}


def test_what_the_stand_in_offers_real_cupy_has():
    cupy = pytest.importorskip("cupy")  # where CuPy is installed (a GPU machine)
    offered = {name for name in vars(cp) if not name.startswith("_")} - {"ufunc"}
    assert not {name for name in offered if not hasattr(cupy, name)}
    assert not {name for name in strict_cupy.METHODS if not hasattr(cupy.ndarray, name)}


# ------------------------------------------------------------------------------ tinygan on it


def test_tinygan_takes_the_stand_in_for_cupy_and_forgets_it_afterwards():
    available = tg.cuda_available()
    with pytest.MonkeyPatch.context() as monkeypatch:
        strict_cupy.install(monkeypatch)
        assert tg.cuda_available() and backend.normalize_device("cuda") == "cuda"
        x = tg.tensor(np.arange(4.0)).to("cuda")
        assert backend.is_cupy_array(x.data) and x.xp is cp and x.device == "cuda:0"
        backend.scatter_add(x.xp, x.data, np.array([0, 0]), cp.asarray(np.ones(2)))
        np.testing.assert_array_equal(x.numpy(), [2.0, 1.0, 2.0, 3.0])
        assert isinstance(x.to("cpu").data, np.ndarray)
    assert tg.cuda_available() == available and backend._cupy is not cp
    assert sys.modules.get("cupy") is not cp


def test_the_library_and_the_demos_never_import_the_stand_in():
    sources = [*ROOT.joinpath("tinygan").rglob("*.py"), *ROOT.joinpath("demos").glob("*.py")]
    assert sources and not [p for p in sources if "strict_cupy" in p.read_text()]


# ------------------------------------------------------------------------------ the main demo

# What one step of the main demo's loop (demos/mnist_lsgan.py) may ask of the host, on a
# GPU: no synchronisation at all, but at a step that logs (every log_every steps and the
# last) one, which brings the losses of the steps since back together; and two copies to
# the device, the batch of real digits and the noise.
SYNCS_PER_STEP = 0
SYNCS_PER_LOGGED_STEP = 1
TRANSFERS_PER_STEP = 2


def test_a_main_demo_step_waits_for_the_device_only_to_log(load_demo, monkeypatch, tmp_path):
    strict_cupy.install(monkeypatch)
    demo = load_demo("mnist_lsgan")
    per_step: dict[int, tuple[list[str], list[str]]] = {}

    class CountingRun(demo.Run):
        def steps(self):
            for step in super().steps():
                strict_cupy.reset_counts()
                yield step  # the loop's body runs here
                per_step[step] = strict_cupy.syncs(), strict_cupy.transfers()

    monkeypatch.setattr(demo, "Run", CountingRun)
    argv = ["--device", "cuda", "--steps", "6", "--log-every", "3", "--batch-size", "4"]
    argv += ["--sample-every", "0", "--checkpoint-every", "0", "--no-download"]
    monkeypatch.setattr(sys, "argv", ["mnist_lsgan.py", *argv, "--out", str(tmp_path)])
    with tg.use_fast_paths(True):  # the demo sets the switch; the block restores it
        demo.main()
    assert sorted(per_step) == [1, 2, 3, 4, 5, 6]
    for step, (syncs, transfers) in per_step.items():
        allowed = SYNCS_PER_LOGGED_STEP if step % 3 == 0 else SYNCS_PER_STEP
        assert len(syncs) <= allowed, f"step {step} synchronised {len(syncs)} times: {syncs}"
        assert len(transfers) == TRANSFERS_PER_STEP, f"step {step}: {transfers}"
