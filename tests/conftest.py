"""Shared fixtures: the device every device-aware test runs on."""

import pytest

import tinygan as tg


@pytest.fixture(params=["cpu", "cuda"])
def device(request: pytest.FixtureRequest) -> str:
    """Run the test once on the CPU (NumPy) and once on a GPU (CuPy) when one is usable."""
    if request.param == "cuda" and not tg.cuda_available():
        pytest.skip("CUDA is not available (CuPy not installed or no NVIDIA GPU)")
    return request.param
