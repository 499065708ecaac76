"""Shared fixtures: the device every device-aware test runs on, the fast paths on and off,
real Fashion-MNIST, and the demos as modules."""

import importlib.util
import sys
from pathlib import Path

import pytest
import strict_cupy

import tinygan as tg
from tinygan import data


@pytest.fixture(params=["cpu", "cuda", "strict"])
def device(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test on the CPU (NumPy), on a GPU (CuPy) when one is usable, and on the strict
    CuPy stand-in (tests/strict_cupy.py), which tinygan takes for CuPy: there the test gets
    "cuda", and every device array is the stand-in's, which refuses what CuPy refuses."""
    if request.param == "cuda" and not tg.cuda_available():
        pytest.skip("CUDA is not available (CuPy not installed or no NVIDIA GPU)")
    if request.param == "strict":
        strict_cupy.install(monkeypatch)
        return "cuda"
    return request.param


@pytest.fixture(params=[True, False], ids=["fast", "reference"])
def fast_paths(request: pytest.FixtureRequest):
    """Run the test with the fast paths of tinygan.fast on, then with only the plain
    compositions the tour teaches (``use_fast_paths(False)``)."""
    with tg.use_fast_paths(request.param):
        yield request.param


def _installed_fashion_mnist() -> Path | None:
    """The first folder of the loader's own search list that holds all four Fashion-MNIST
    files, ``.gz`` or not: ``$TINYGAN_DATA/fashion-mnist``, the user cache
    (``~/.cache/tinygan/fashion-mnist``), Debian's ``/usr/share/datasets/fashion-mnist``."""
    for folder in data.dataset_search_dirs(data.FASHION_MNIST):
        if all(
            (folder / name).is_file() or (folder / name.removesuffix(".gz")).is_file()
            for name in data.FASHION_MNIST.md5
        ):
            return folder
    return None


# Looked up once, while the tests are collected: before any test's fixtures can change the
# environment (tests/test_data.py hides TINYGAN_DATA, HOME and the system folders).
_FASHION_MNIST = _installed_fashion_mnist()


@pytest.fixture
def fashion_mnist_root() -> Path:
    """The folder holding the real Fashion-MNIST; the test is skipped when there is none."""
    if _FASHION_MNIST is None:
        pytest.skip(
            "Fashion-MNIST not found: put its four files in $TINYGAN_DATA/fashion-mnist, "
            "install Debian's dataset-fashion-mnist, or download both splits once with "
            "tinygan.data.load_fashion_mnist"
        )
    return _FASHION_MNIST


@pytest.fixture
def load_demo(monkeypatch):
    """``load_demo(name)``: demos/<name>.py as a module (its ``__main__`` part not run)."""
    demos = Path(__file__).resolve().parent.parent / "demos"

    def load(name: str):
        monkeypatch.syspath_prepend(str(demos))
        spec = importlib.util.spec_from_file_location(f"{name}_demo", demos / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look it up
        spec.loader.exec_module(module)
        return module

    return load
