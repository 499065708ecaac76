"""The PyTorch habits a GAN tutorial uses work in tinygan, with PyTorch's names and meanings.

tensor factories (``randn``, ``rand``, ``zeros``, ``ones``, ``full``, ``*_like``),
``Tensor.view`` and ``.cpu()``, ``tg.save`` / ``tg.load`` of a state dict, and PyTorch's
losses on logits. The ops themselves (``view``, ``interpolate``, ``layer_norm``,
``embedding``, ``mse_loss``, ``binary_cross_entropy_with_logits``) are rows of the op table
in test_ops.py, and the layers are tested in test_nn.py.

Where PyTorch is installed (it is optional), the same functions are held against PyTorch's,
a tinygan state dict is moved into the same PyTorch network and back with the same outputs,
and the PyTorch side of the DCGAN loop in docs/09-coming-from-pytorch.md runs; without
PyTorch those tests are skipped.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tinygan as tg
from tinygan import functional as F
from tinygan import losses, models, nn
from tinygan.checkpoint import CheckpointError
from tinygan.tensor import Tensor

CHAPTER = Path(__file__).resolve().parent.parent / "docs" / "09-coming-from-pytorch.md"

# ------------------------------------------------------------------------------ factories


def test_factories_make_float32_tensors_of_the_given_size():
    for make in (tg.randn, tg.rand, tg.zeros, tg.ones):
        for t in (make(2, 3), make((2, 3)), make([2, 3])):
            assert isinstance(t, Tensor) and t.shape == (2, 3) and t.dtype == np.float32
            assert t.device == "cpu" and not t.requires_grad and t.is_leaf
        assert make(4, dtype="float64").dtype == np.float64
        assert make().shape == ()
        assert make(2, requires_grad=True).requires_grad
        with pytest.raises(TypeError, match="float32 or float64"):
            make(2, dtype="int64")
        with pytest.raises(ValueError, match="non-negative ints"):
            make(2, -1)
    assert np.all(tg.zeros(3, 4).numpy() == 0) and np.all(tg.ones(5).numpy() == 1)
    full = tg.full((2, 2), 0.9)
    assert full.dtype == np.float32 and np.all(full.numpy() == np.float32(0.9))
    assert tg.full(3, 1.0).shape == (3,)


def test_random_factories_draw_from_their_distribution_and_generator():
    rng = np.random.default_rng(0)
    normal, uniform = tg.randn(200, 500, generator=rng).numpy(), tg.rand(100_000).numpy()
    assert normal.mean() == pytest.approx(0.0, abs=0.01)  # standard error 0.0032
    assert normal.std() == pytest.approx(1.0, abs=0.01)
    assert 0.0 <= uniform.min() and uniform.max() < 1.0
    assert uniform.mean() == pytest.approx(0.5, abs=0.005)  # standard error 0.0009
    a = tg.randn(3, 4, generator=np.random.default_rng(7))
    b = tg.randn(3, 4, generator=np.random.default_rng(7))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), tg.randn(3, 4, generator=np.random.default_rng(8)).numpy())
    expected = np.random.default_rng(7).standard_normal((3, 4), dtype=np.float32)
    np.testing.assert_array_equal(a.numpy(), expected)  # drawn on the CPU, in float32


def test_like_factories_copy_shape_dtype_and_device(device):
    x = tg.tensor(np.ones((2, 3))).to(device)  # float64
    for make, value in ((tg.zeros_like, 0.0), (tg.ones_like, 1.0)):
        t = make(x)
        assert t.shape == (2, 3) and t.dtype == np.float64 and t.device == x.device
        assert np.all(t.numpy() == value) and not t.requires_grad
    on_device = tg.randn(2, 2, device=device)
    assert on_device.device.split(":")[0] == device and on_device.dtype == np.float32


# ------------------------------------------------------------------------------ view, cpu


def test_view_shares_memory_with_its_tensor():
    x = tg.tensor(np.arange(6.0))
    v = x.view(2, 3)
    x.data[0] = 100.0  # an in-place write is seen through the view, as in PyTorch
    assert v.numpy()[0, 0] == 100.0
    assert x.view(-1, 2).shape == (3, 2) and x.view((3, 2)).shape == (3, 2)
    scores = tg.zeros(4, 1, 1, 1)
    assert scores.view(-1).shape == (4,)  # the DCGAN tutorial's netD(x).view(-1)


# Which views exist depends on the strides alone; these are the chapter's exercise.
VIEWS = [
    ("contiguous", lambda x: x, (6, 4), True),
    ("permuted", lambda x: x.permute(0, 2, 1), (2, 12), False),
    ("rows_sliced_merge_last_two", lambda x: x[:, 1:], (2, 8), True),
    ("columns_sliced_merge_last_two", lambda x: x[:, :, 1:], (2, 9), False),
    ("rows_sliced_merge_first_two", lambda x: x[:, 1:], (4, 4), False),
]


@pytest.mark.parametrize("name, take, shape, possible", VIEWS, ids=[v[0] for v in VIEWS])
def test_view_exists_exactly_where_the_strides_allow(name, take, shape, possible):
    t = take(tg.tensor(np.arange(24.0).reshape(2, 3, 4)))
    if possible:
        np.testing.assert_array_equal(t.view(shape).numpy(), t.numpy().reshape(shape))
    else:
        with pytest.raises(RuntimeError, match="without copying"):
            t.view(shape)


@pytest.mark.parametrize("name, take, shape, possible", VIEWS, ids=[v[0] for v in VIEWS])
def test_pytorchs_view_exists_in_the_same_cases(name, take, shape, possible):
    torch = pytest.importorskip("torch")
    theirs = take(torch.arange(24.0, dtype=torch.float64).reshape(2, 3, 4))
    if possible:
        assert theirs.view(shape).shape == shape
    else:
        with pytest.raises(RuntimeError, match="view size is not compatible"):
            theirs.view(shape)


def test_view_refuses_to_copy_where_reshape_would():
    x = tg.tensor(np.arange(24.0).reshape(2, 3, 4), requires_grad=True)
    t = x.permute(2, 0, 1)  # not contiguous: no view can flatten it
    with pytest.raises(RuntimeError, match=r"cannot be viewed as \(24,\) without copying.*reshape"):
        t.view(-1)
    np.testing.assert_array_equal(t.reshape(-1).numpy(), x.numpy().transpose(2, 0, 1).ravel())
    assert x[:, 1:].view(2, 2, 4).shape == (2, 2, 4)  # some slices can be viewed, as in PyTorch
    with pytest.raises(ValueError, match="cannot reshape"):
        x.view(5, -1)


def test_cpu_moves_back_differentiably(device):
    x = tg.tensor(np.arange(3.0), requires_grad=True)
    assert x.cpu() is x
    y = x.to(device) * 2.0
    back = y.cpu()
    assert back.device == "cpu" and isinstance(back.data, np.ndarray)
    back.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])
    if device == "cuda":
        assert x.cuda().device.startswith("cuda")


# ------------------------------------------------------------------------------ save / load


def _small_model(seed: int) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Linear(3, 8, rng=rng), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2, rng=rng)
    )


def test_save_and_load_a_state_dict(tmp_path):
    a, b = _small_model(0), _small_model(1)
    x = tg.randn(5, 3, generator=np.random.default_rng(2))
    a(x)  # move the running statistics
    tg.save(a.state_dict(), tmp_path / "model.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left
    state = tg.load(tmp_path / "model.npz")
    assert list(state) == list(a.state_dict())
    for key, value in a.state_dict().items():
        assert isinstance(state[key], np.ndarray) and state[key].dtype == value.dtype
        np.testing.assert_array_equal(state[key], value)
    b.load_state_dict(state)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    # A plain NumPy archive without pickles: any tool can read it, safely.
    with np.load(tmp_path / "model.npz", allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(state)
    assert tg.load(str(tmp_path / "model.npz"), map_location="cpu").keys() == state.keys()


def test_save_takes_tensors_numbers_and_optimizer_state(tmp_path):
    model = _small_model(0)
    opt = tg.optim.Adam(model.parameters(), lr=1e-3)
    model(tg.randn(4, 3)).sum().backward()
    opt.step()
    tg.save(opt.state_dict(), tmp_path / "opt.npz")
    again = tg.optim.Adam(model.parameters(), lr=0.5)
    again.load_state_dict(tg.load(tmp_path / "opt.npz"))
    assert again.lr == 1e-3
    np.testing.assert_array_equal(again.state[0]["exp_avg"], opt.state[0]["exp_avg"])
    tg.save({"w": tg.ones(2), "step": 7}, tmp_path / "mixed.npz")
    loaded = tg.load(tmp_path / "mixed.npz")
    assert loaded["step"] == 7 and loaded["w"].dtype == np.float32


def test_save_refuses_what_it_cannot_store_without_pickle(tmp_path):
    model = _small_model(0)
    with pytest.raises(TypeError, match=r"pass model.state_dict\(\)"):
        tg.save(model, tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"name the file \*\.npz, got '.*netG.pth'"):
        tg.save(model.state_dict(), tmp_path / "netG.pth")
    with pytest.raises(TypeError, match="'config'.*no pickled objects"):
        tg.save({"config": {"lr": 1.0}}, tmp_path / "m.npz")
    with pytest.raises(TypeError, match="string key"):
        tg.save({3: np.zeros(2)}, tmp_path / "m.npz")
    assert not any(tmp_path.iterdir())  # nothing was written
    with pytest.raises(FileNotFoundError):
        tg.load(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable"):
        tg.load(tmp_path / "bad.npz")


def test_load_reads_only_what_save_writes(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, obj=np.array([{"a": 1}], dtype=object))  # an archive holding a pickle
    with pytest.raises(CheckpointError):
        tg.load(path)
    assert zipfile.is_zipfile(path)


# ------------------------------------------------------------------------------ losses


def test_bce_with_logits_on_real_and_fake_labels_is_the_gan_d_loss():
    rng = np.random.default_rng(0)
    real = tg.tensor(rng.standard_normal((6, 1)), requires_grad=True)
    fake = tg.tensor(rng.standard_normal((6, 1)), requires_grad=True)
    criterion = nn.BCEWithLogitsLoss()
    tutorial = criterion(real, tg.ones_like(real)) + criterion(fake, tg.zeros_like(fake))
    hand_derived = losses.gan_d_loss(real, fake)
    assert tutorial.item() == pytest.approx(hand_derived.item(), rel=1e-14)
    for a, b in zip(tg.grad(tutorial, [real, fake]), tg.grad(hand_derived, [real, fake])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-14, atol=1e-16)
    g_loss = criterion(fake, tg.ones_like(fake))  # the non-saturating generator loss
    assert g_loss.item() == pytest.approx(losses.gan_g_loss(fake).item(), rel=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_with_logits_is_exact_at_extreme_logits(dtype):
    x = tg.tensor([1000.0, -1000.0, 1000.0, 0.0], dtype=dtype, requires_grad=True)
    y = tg.tensor([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    loss = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    assert loss.dtype == dtype
    np.testing.assert_allclose(loss.numpy(), [0.0, 0.0, 1000.0, np.log(2.0)], rtol=1e-6)
    (g,) = tg.grad(loss.sum(), [x])  # sigma(x) - y
    np.testing.assert_allclose(g.numpy(), [0.0, 0.0, 1.0, -0.5], rtol=1e-6)


def test_losses_need_targets_of_the_input_shape():
    scores, labels = tg.zeros(4, 1), tg.ones(4)
    with pytest.raises(ValueError, match=r"\(4, 1\) and target of shape \(4,\) differ.*view"):
        F.mse_loss(scores, labels)
    with pytest.raises(ValueError, match="differ"):
        F.binary_cross_entropy_with_logits(scores, labels)
    with pytest.raises(TypeError, match="must be Tensors"):
        F.mse_loss(scores, 1.0)
    assert F.mse_loss(scores.view(-1), labels).item() == 1.0


# ------------------------------------------------------------------------------ PyTorch itself


def _torch_twin(model: nn.Sequential):
    """The same network in PyTorch, layer by layer, with PyTorch's default weights."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    layers = []
    for m in model:
        if isinstance(m, nn.Linear):
            layers.append(tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None))
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            extra = {"output_padding": m.output_padding} if hasattr(m, "output_padding") else {}
            cls = tnn.Conv2d if isinstance(m, nn.Conv2d) else tnn.ConvTranspose2d
            layers.append(
                cls(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                    bias=m.bias is not None, **extra)
            )  # fmt: skip
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            cls = tnn.BatchNorm1d if isinstance(m, nn.BatchNorm1d) else tnn.BatchNorm2d
            layers.append(cls(m.num_features, eps=m.eps, momentum=m.momentum))
        elif isinstance(m, nn.LayerNorm):
            affine, bias = m.weight is not None, m.bias is not None
            layers.append(tnn.LayerNorm(m.normalized_shape, m.eps, affine, bias=bias))
        elif isinstance(m, nn.Upsample):
            layers.append(tnn.Upsample(m.size, m.scale_factor, m.mode))
        elif isinstance(m, nn.LeakyReLU):
            layers.append(tnn.LeakyReLU(m.negative_slope))
        elif isinstance(m, nn.Flatten):
            layers.append(tnn.Flatten(m.start_dim, m.end_dim))
        elif isinstance(m, nn.Unflatten):
            layers.append(tnn.Unflatten(m.dim, m.unflattened_size))
        else:  # ReLU, Tanh, Sigmoid
            layers.append(getattr(tnn, type(m).__name__)())
    return tnn.Sequential(*layers)


MODELS = {
    "upsample_generator": (lambda rng: models.upsample_generator(32, 3, 16, 4, rng=rng), (16,)),
    "dcgan_generator": (lambda rng: models.dcgan_generator(32, 3, 16, 4, rng=rng), (16,)),
    "critic_layer_norm": (
        lambda rng: models.dcgan_discriminator(32, 3, 4, norm="layer", rng=rng),
        (3, 32, 32),
    ),
    "dcgan28_discriminator": (lambda rng: models.dcgan28_discriminator(rng=rng), (1, 28, 28)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_a_state_dict_moves_to_pytorch_and_back_with_the_same_outputs(name, tmp_path):
    torch = pytest.importorskip("torch")
    build, input_shape = MODELS[name]
    ours = build(np.random.default_rng(0))
    twin = _torch_twin(ours)
    x = np.random.default_rng(1).standard_normal((4, *input_shape))

    # tinygan -> file -> PyTorch: the same keys, shapes, dtypes and values.
    tg.save(ours.state_dict(), tmp_path / "model.npz")
    state = {k: torch.from_numpy(v) for k, v in tg.load(tmp_path / "model.npz").items()}
    twin.load_state_dict(state)  # strict: every key matches
    for key, value in ours.state_dict().items():
        np.testing.assert_array_equal(twin.state_dict()[key].numpy(), value)
        assert twin.state_dict()[key].numpy().dtype == value.dtype

    # PyTorch -> tinygan: a model with other weights becomes the same model, exactly.
    other = build(np.random.default_rng(5))
    other.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    for key, value in ours.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[key], value)
    other.eval(), ours.eval()
    x32 = tg.tensor(x, dtype="float32")
    np.testing.assert_array_equal(other(x32).numpy(), ours(x32).numpy())

    # The same outputs in PyTorch, in float64 so that only rounding can differ: evaluation
    # mode, then training mode (batch statistics), whose running statistics move alike.
    ours.double(), twin.double()
    for training in (False, True):
        ours.train(training), twin.train(training)
        expected = twin(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(ours(tg.tensor(x)).numpy(), expected, rtol=1e-10, atol=1e-12)
    for key, value in ours.state_dict().items():
        np.testing.assert_allclose(twin.state_dict()[key].numpy(), value, rtol=1e-12)


def test_apply_visits_modules_in_pytorchs_order():
    pytest.importorskip("torch")
    ours = models.dcgan_discriminator(32, 3, 4, norm="layer", rng=np.random.default_rng(0))
    visited, visited_twin = [], []
    ours.apply(lambda m: visited.append(type(m).__name__))
    _torch_twin(ours).apply(lambda m: visited_twin.append(type(m).__name__))
    assert visited == visited_twin and visited[-1] == "Sequential"


WEIGHT = np.random.default_rng(4).random(4)


def _pair(shape, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.random(shape)


FUNCTIONS = {  # name: (tinygan's function, PyTorch's as a function of torch, inputs)
    "interpolate_scale": (
        lambda x: F.interpolate(x, scale_factor=2),
        lambda torch: lambda x: torch.nn.functional.interpolate(x, scale_factor=2),
        lambda: [np.random.default_rng(0).standard_normal((2, 3, 3, 4))],
    ),
    "interpolate_size": (
        lambda x: F.interpolate(x, size=(6, 12), mode="nearest"),
        lambda torch: lambda x: torch.nn.functional.interpolate(x, size=(6, 12), mode="nearest"),
        lambda: [np.random.default_rng(0).standard_normal((1, 2, 3, 4))],
    ),
    "layer_norm": (
        lambda x, w, b: F.layer_norm(x, (3, 2, 2), w, b),
        lambda torch: lambda x, w, b: torch.nn.functional.layer_norm(x, (3, 2, 2), w, b),
        lambda: [
            np.random.default_rng(i).standard_normal(s)
            for i, s in enumerate([(2, 3, 2, 2), (3, 2, 2), (3, 2, 2)])
        ],  # fmt: skip
    ),
    "mse_loss": (
        F.mse_loss,
        lambda torch: torch.nn.functional.mse_loss,
        lambda: list(_pair((3, 4), 0)),
    ),
    "mse_loss_sum": (
        lambda x, y: F.mse_loss(x, y, reduction="sum"),
        lambda torch: lambda x, y: torch.nn.functional.mse_loss(x, y, reduction="sum"),
        lambda: list(_pair((3, 4), 1)),
    ),
    "bce_with_logits": (
        F.binary_cross_entropy_with_logits,
        lambda torch: torch.nn.functional.binary_cross_entropy_with_logits,
        lambda: list(_pair((3, 4), 2)),
    ),
    "bce_with_logits_weight_none": (  # PyTorch has no gradient for the weight: a constant
        lambda x, y: F.binary_cross_entropy_with_logits(x, y, tg.tensor(WEIGHT), reduction="none"),
        lambda torch: (
            lambda x, y: torch.nn.functional.binary_cross_entropy_with_logits(
                x, y, torch.from_numpy(WEIGHT), reduction="none"
            )
        ),
        lambda: list(_pair((3, 4), 3)),
    ),
    "embedding": (
        lambda w: F.embedding(np.array([[4, 0], [4, 2]]), w),
        lambda torch: lambda w: torch.nn.functional.embedding(torch.tensor([[4, 0], [4, 2]]), w),
        lambda: [np.random.default_rng(5).standard_normal((5, 3))],
    ),
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_functions_compute_what_pytorchs_compute(name):
    torch = pytest.importorskip("torch")
    ours, theirs, make_inputs = FUNCTIONS[name]
    arrays = make_inputs()
    inputs = [tg.tensor(a, requires_grad=True) for a in arrays]
    torch_inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, torch_out = ours(*inputs), theirs(torch)(*torch_inputs)
    np.testing.assert_allclose(out.numpy(), torch_out.detach().numpy(), rtol=1e-12, atol=1e-14)
    g = np.random.default_rng(6).standard_normal(out.shape)
    grads = tg.grad(out, inputs, grad_outputs=g)
    torch_grads = torch.autograd.grad(torch_out, torch_inputs, torch.from_numpy(g))
    for a, b in zip(grads, torch_grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-14)


def _pytorch_blocks() -> list[str]:
    """The chapter's ```py blocks: its PyTorch code, which the docs test cannot run."""
    return re.findall(r"^```py\n(.*?)^```$", CHAPTER.read_text(encoding="utf-8"), re.M | re.S)


def test_the_chapters_pytorch_code_runs(tmp_path, monkeypatch):
    assert len(_pytorch_blocks()) >= 2  # the DCGAN loop and moving a model across
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for code in _pytorch_blocks():
        exec(compile(code, str(CHAPTER), "exec"), namespace)
    assert os.path.exists("netG.npz")  # the loop saved its generator the tinygan way
