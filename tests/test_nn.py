"""Modules: registration, PyTorch's state_dict keys and layouts, default initialisation,
BatchNorm against NumPy, modes, devices, repr, errors, and an MLP that learns XOR."""

import math

import numpy as np
import pytest

import tinygan as tg
from tinygan import functional as F
from tinygan import init, models, nn, optim
from tinygan.backend import to_numpy


def _conv_net(seed=0):
    """A little of everything, on (N, 1, 8, 8) inputs."""
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 4, stride=2, padding=1, rng=rng),  # (N, 4, 4, 4)
        nn.BatchNorm2d(4),
        nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1, rng=rng),  # (N, 2, 8, 8)
        nn.Flatten(),  # (N, 128)
        nn.Linear(128, 3, rng=rng),
        nn.BatchNorm1d(3),
        nn.Tanh(),
    )


# The keys and shapes PyTorch gives the same torch.nn.Sequential, written out by hand:
# Conv2d weight (out, in, kh, kw); ConvTranspose2d weight (in, out, kh, kw); Linear weight
# (out, in); BatchNorm's weight, bias and three buffers (num_batches_tracked is an int64
# scalar); layers without state (LeakyReLU, Flatten, Tanh) have no keys.
PYTORCH_KEYS = [
    ("0.weight", (4, 1, 4, 4)),
    ("0.bias", (4,)),
    ("1.weight", (4,)),
    ("1.bias", (4,)),
    ("1.running_mean", (4,)),
    ("1.running_var", (4,)),
    ("1.num_batches_tracked", ()),
    ("3.weight", (4, 2, 4, 4)),
    ("3.bias", (2,)),
    ("5.weight", (3, 128)),
    ("5.bias", (3,)),
    ("6.weight", (3,)),
    ("6.bias", (3,)),
    ("6.running_mean", (3,)),
    ("6.running_var", (3,)),
    ("6.num_batches_tracked", ()),
]


def test_state_dict_keys_and_shapes_are_pytorchs():
    state = _conv_net().state_dict()
    assert [(k, v.shape) for k, v in state.items()] == PYTORCH_KEYS
    assert state["1.num_batches_tracked"].dtype == np.int64
    assert state["0.weight"].dtype == np.float32


def test_parameters_register_on_assignment():
    net = _conv_net()
    names = [name for name, _ in net.named_parameters()]
    assert names == [k for k, _ in PYTORCH_KEYS if "running" not in k and "num_batches" not in k]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert [type(m).__name__ for m in net.modules()][:3] == ["Sequential", "Conv2d", "BatchNorm2d"]
    assert len(list(net.modules())) == 9 and len(net) == 8
    assert isinstance(net[-1], nn.Tanh) and [type(m) for m in net] == [type(m) for m in net[:]]
    assert list(net[1:3].state_dict())[:2] == ["0.weight", "0.bias"]  # a slice renumbers

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(np.ones(2, dtype=np.float32))
            self.inner = nn.Linear(2, 2, bias=False)
            self.note = "not state"

        def forward(self, x):
            return self.inner(x) * self.scale

    block = Block()
    assert list(block.state_dict()) == ["scale", "inner.weight"]
    block.inner = nn.Linear(2, 2)  # re-assignment replaces the registered module
    assert list(block.state_dict()) == ["scale", "inner.weight", "inner.bias"]
    assert block(tg.tensor(np.ones((3, 2), dtype=np.float32))).shape == (3, 2)


def test_module_needs_super_init():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Broken()


def test_forward_shapes_of_the_dcgan_28_layers():
    rng = np.random.default_rng(0)
    g = nn.Sequential(
        nn.Linear(100, 6272, rng=rng),
        nn.BatchNorm1d(6272),
        nn.ReLU(),
        nn.Unflatten(1, (128, 7, 7)),
        nn.ConvTranspose2d(128, 64, 4, 2, 1, rng=rng),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, 2, 1, rng=rng),
        nn.Tanh(),
    )
    d = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1, rng=rng),
        nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1, rng=rng),
        nn.BatchNorm2d(128),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(6272, 1, rng=rng),
    )
    images = g(tg.tensor(rng.standard_normal((2, 100)), dtype="float32"))
    assert images.shape == (2, 1, 28, 28) and images.dtype == np.float32
    assert d(images).shape == (2, 1)


def test_linear_computes_x_wt_plus_b():
    layer = nn.Linear(3, 2, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    expected = x @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(layer(tg.tensor(x)).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("make", "fan_in"),
    [
        (lambda rng: nn.Linear(200, 30, rng=rng), 200),
        (lambda rng: nn.Conv2d(16, 32, 3, rng=rng), 16 * 9),
        # PyTorch's fan_in for ConvTranspose2d comes from weight.shape[1] = out_channels.
        (lambda rng: nn.ConvTranspose2d(64, 8, 3, rng=rng), 8 * 9),
    ],
    ids=["Linear", "Conv2d", "ConvTranspose2d"],
)
def test_default_init_is_pytorchs_uniform(make, fan_in):
    layer = make(np.random.default_rng(0))
    bound = 1.0 / math.sqrt(fan_in)
    for p in (layer.weight, layer.bias):
        values = p.numpy()
        assert values.dtype == np.float32
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.8 * bound  # a smaller fan_in bound would fail here
    # U(-b, b) has standard deviation b / sqrt(3).
    assert layer.weight.numpy().std() == pytest.approx(bound / math.sqrt(3), rel=0.1)


def test_seeded_rng_gives_the_same_weights():
    a, b, c = _conv_net(seed=7), _conv_net(seed=7), _conv_net(seed=8)
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[key])
    assert not np.array_equal(a.state_dict()["0.weight"], c.state_dict()["0.weight"])


def test_init_helpers():
    rng = np.random.default_rng(0)
    t = nn.Parameter(np.zeros((200, 100), dtype=np.float32))
    init.normal_(t, 0.5, 0.02, rng)
    assert t.dtype == np.float32
    assert t.numpy().mean() == pytest.approx(0.5, abs=1e-3)
    assert t.numpy().std() == pytest.approx(0.02, rel=0.02)
    init.constant_(t, 3.0)
    assert np.all(t.numpy() == 3.0)
    init.zeros_(t)
    assert np.all(t.numpy() == 0.0)


def test_dcgan_init():
    net = init.dcgan_init_(_conv_net(), np.random.default_rng(0))
    conv_weights = np.concatenate([net[0].weight.numpy().ravel(), net[3].weight.numpy().ravel()])
    assert conv_weights.std() == pytest.approx(0.02, rel=0.15)
    assert abs(conv_weights.mean()) < 0.005
    for bn in (net[1], net[6]):
        assert np.all(np.abs(bn.weight.numpy() - 1.0) < 0.1) and np.all(bn.bias.numpy() == 0)
    for layer in (net[0], net[3], net[5]):
        assert np.all(layer.bias.numpy() == 0)
    again = init.dcgan_init_(_conv_net(), np.random.default_rng(0))
    np.testing.assert_array_equal(again[3].weight.numpy(), net[3].weight.numpy())


def test_state_dict_round_trip():
    a, b = _conv_net(seed=1), _conv_net(seed=2)
    x = tg.tensor(np.random.default_rng(3).standard_normal((5, 1, 8, 8)), dtype="float32")
    a(x)  # move a's running statistics away from their start
    a.eval()
    b.eval()
    state = a.state_dict()
    assert b.load_state_dict(state) == ([], [])
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert b[1].num_batches_tracked == 1
    # The state dict holds copies: training on does not change it.
    before = state["0.weight"].copy()
    a[0].weight.data += 1.0
    np.testing.assert_array_equal(state["0.weight"], before)


def test_load_state_dict_errors_name_the_key_and_both_shapes():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    state = net.state_dict()
    wrong = dict(state, **{"2.weight": np.zeros((4, 3), dtype=np.float32)})
    before = net.state_dict()
    with pytest.raises(RuntimeError, match=r"'2.weight'.*\(4, 3\).*\(1, 3\)"):
        net.load_state_dict(wrong)
    with pytest.raises(RuntimeError, match=r"missing key '0.bias'.*\(3,\)"):
        net.load_state_dict({k: v for k, v in state.items() if k != "0.bias"})
    with pytest.raises(RuntimeError, match=r"unexpected key '3.weight' with shape \(2, 2\)"):
        net.load_state_dict(dict(state, **{"3.weight": np.zeros((2, 2))}))
    for key, value in net.state_dict().items():  # a failed load changes nothing
        np.testing.assert_array_equal(value, before[key])
    partial = {"0.weight": np.ones((3, 2)), "extra": np.zeros(1)}
    result = net.load_state_dict(partial, strict=False)
    assert result.missing_keys == ["0.bias", "2.weight", "2.bias"]
    assert result.unexpected_keys == ["extra"]
    assert np.all(net[0].weight.numpy() == 1.0) and net[0].weight.dtype == np.float32


def _bn_reference(x, axes, mean, var, weight, bias, eps=1e-5):
    shape = [1] * x.ndim
    shape[1] = -1
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * weight.reshape(
        shape
    ) + bias.reshape(shape)


@pytest.mark.parametrize(
    ("layer", "shape", "axes"),
    [(nn.BatchNorm1d, (6, 3), (0,)), (nn.BatchNorm2d, (4, 3, 5, 5), (0, 2, 3))],
    ids=["1d", "2d"],
)
def test_batchnorm_train_and_eval_against_numpy(layer, shape, axes, device):
    rng = np.random.default_rng(0)
    bn = layer(3, momentum=0.2).double()
    bn.weight.data[:] = rng.standard_normal(3)
    bn.bias.data[:] = rng.standard_normal(3)
    bn = bn.to(device)
    w, b = bn.weight.numpy(), bn.bias.numpy()
    running_mean, running_var = np.zeros(3), np.ones(3)
    count = int(np.prod([shape[a] for a in axes]))
    for step in range(1, 3):  # training: batch statistics, running ones follow them
        x = 2.0 + 3.0 * rng.standard_normal(shape)
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        np.testing.assert_allclose(
            bn(tg.tensor(x, device=device)).numpy(),
            _bn_reference(x, axes, mean, var, w, b),
            rtol=1e-10,
        )
        running_mean = 0.8 * running_mean + 0.2 * mean
        running_var = 0.8 * running_var + 0.2 * var * count / (count - 1)  # unbiased
        np.testing.assert_allclose(to_numpy(bn.running_mean), running_mean, rtol=1e-12)
        np.testing.assert_allclose(to_numpy(bn.running_var), running_var, rtol=1e-12)
        assert bn.num_batches_tracked == step
    bn.eval()  # evaluation: the running statistics, which no longer move
    x = rng.standard_normal(shape)
    expected = _bn_reference(x, axes, running_mean, running_var, w, b)
    np.testing.assert_allclose(bn(tg.tensor(x, device=device)).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(to_numpy(bn.running_mean), running_mean, rtol=1e-12)
    assert bn.num_batches_tracked == 2


def test_batchnorm_rejects_wrong_input():
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\) expects input \(N, C, H, W\)"):
        nn.BatchNorm2d(3)(tg.tensor(np.zeros((2, 4, 5, 5))))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\)"):
        nn.BatchNorm1d(3)(tg.tensor(np.zeros((2, 3, 5, 5))))


def test_train_eval_reach_every_layer_and_dropout_follows():
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5, rng=np.random.default_rng(0)))
    x = tg.tensor(np.ones((50, 4), dtype=np.float32))
    assert net.eval() is net and not any(m.training for m in net.modules())
    np.testing.assert_array_equal(net(x).numpy(), net[0](x).numpy())
    net.train()
    assert all(m.training for m in net.modules())
    dropped = net(x).numpy() == 0
    assert 0.3 < dropped.mean() < 0.7


def test_flatten_and_unflatten():
    x = tg.tensor(np.arange(24.0).reshape(2, 3, 4))
    flat = nn.Flatten()(x)
    assert flat.shape == (2, 12)
    assert nn.Unflatten(1, (3, 2, 2))(flat).shape == (2, 3, 2, 2)
    assert nn.Flatten(0, 1)(x).shape == (6, 4)
    with pytest.raises(ValueError, match="cannot be split"):
        nn.Unflatten(1, (5, 2))(flat)


def test_zero_grad_and_activations():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1), nn.Sigmoid())
    net(tg.tensor(np.ones((4, 2), dtype=np.float32))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_repr_shows_the_tree_with_shapes_and_counts():
    net = nn.Sequential(
        nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Sequential(nn.Linear(16, 1), nn.Sigmoid())
    )
    assert repr(net).splitlines() == [
        "Sequential(  # 65 parameters",
        "  (0): Linear(in_features=2, out_features=16, bias=True)  "
        "# weight (16, 2), bias (16,): 48 parameters",
        "  (1): LeakyReLU(negative_slope=0.2)",
        "  (2): Sequential(  # 17 parameters",
        "    (0): Linear(in_features=16, out_features=1, bias=True)  "
        "# weight (1, 16), bias (1,): 17 parameters",
        "    (1): Sigmoid()",
        "  )",
        ")",
    ]
    conv = repr(nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1, bias=False))
    assert conv == (
        "ConvTranspose2d(4, 2, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), "
        "bias=False)  # weight (4, 2, 4, 4): 128 parameters"
    )


def test_double_casts_parameters_and_float_buffers_only():
    net = _conv_net().double()
    state = net.state_dict()
    assert state["0.weight"].dtype == np.float64 and state["1.running_var"].dtype == np.float64
    assert state["1.num_batches_tracked"].dtype == np.int64
    assert net.float().state_dict()["0.weight"].dtype == np.float32


def test_to_cpu_keeps_the_parameters_and_bad_devices_raise():
    net = _conv_net()
    weight = net[0].weight
    assert net.to("cpu") is net and net[0].weight is weight
    with pytest.raises(ValueError, match="unknown device"):
        net.to("tpu")


@pytest.mark.skipif(tg.cuda_available(), reason="a usable GPU is present")
def test_to_cuda_without_gpu_raises_a_clear_error():
    with pytest.raises(RuntimeError, match="no CUDA GPU is usable"):
        _conv_net().to("cuda")


def test_mlp_learns_xor():
    # Four Gaussian blobs at (+-1, +-1); the label is XOR of the signs. A linear model can
    # do no better than chance here, so > 95% accuracy means the hidden layer learned.
    rng = np.random.default_rng(0)
    centres = rng.integers(0, 2, size=(512, 2))
    x = (2.0 * centres - 1.0 + 0.25 * rng.standard_normal((512, 2))).astype(np.float32)
    y = (centres[:, 0] ^ centres[:, 1]).astype(np.float32)
    mlp = nn.Sequential(
        nn.Linear(2, 16, rng=rng), nn.ReLU(), nn.Linear(16, 16, rng=rng), nn.ReLU(),
        nn.Linear(16, 1, rng=rng),
    )  # fmt: skip
    opt = optim.Adam(mlp.parameters(), lr=0.02)
    inputs, targets = tg.tensor(x), tg.tensor(y)
    for _ in range(150):
        logits = mlp(inputs).reshape(-1)
        loss = (F.softplus(logits) - targets * logits).mean()  # BCE with logits
        opt.zero_grad()
        loss.backward()
        opt.step()
    with tg.no_grad():
        accuracy = ((mlp(inputs).numpy().reshape(-1) > 0) == (y == 1)).mean()
    assert accuracy > 0.95


# ------------------------------------------------------------------ PyTorch's other layers


def test_apply_visits_children_before_their_parent():
    inner = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    net = nn.Sequential(inner, nn.Linear(3, 1), inner)  # a child listed twice is visited once
    visited = []
    assert net.apply(visited.append) is net
    assert visited == [inner[0], inner[1], inner, net[1], net]
    assert list(net.children()) == [inner, net[1]]


def test_apply_with_a_pytorch_style_weights_init():
    rng = np.random.default_rng(0)

    def weights_init(m):  # the DCGAN tutorial's function, with tinygan's explicit rng
        name = type(m).__name__
        if name.find("Conv") != -1:
            init.normal_(m.weight, 0.0, 0.02, rng)
        elif name.find("BatchNorm") != -1:
            init.normal_(m.weight, 1.0, 0.02, rng)
            init.zeros_(m.bias)

    net = _conv_net().apply(weights_init)
    weights = np.concatenate([net[0].weight.numpy().ravel(), net[3].weight.numpy().ravel()])
    assert weights.std() == pytest.approx(0.02, rel=0.15)
    assert np.all(net[1].bias.numpy() == 0) and np.all(np.abs(net[1].weight.numpy() - 1) < 0.1)
    assert np.abs(net[5].weight.numpy()).max() > 0.05  # Linear: PyTorch's default, untouched


def test_upsample_repeats_each_pixel_into_a_block():
    x = tg.tensor(np.arange(12.0).reshape(1, 2, 2, 3))
    y = nn.Upsample(scale_factor=2)(x)
    assert y.shape == (1, 2, 4, 6)
    np.testing.assert_array_equal(y.numpy(), x.numpy().repeat(2, axis=2).repeat(2, axis=3))
    np.testing.assert_array_equal(nn.Upsample(size=(4, 6))(x).numpy(), y.numpy())
    np.testing.assert_array_equal(
        nn.Upsample(scale_factor=(1, 3))(x).numpy(), x.numpy().repeat(3, 3)
    )
    assert repr(nn.Upsample(scale_factor=2)) == "Upsample(scale_factor=2, mode='nearest')"
    with pytest.raises(ValueError, match="only mode='nearest'"):
        nn.Upsample(scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        nn.Upsample()
    with pytest.raises(ValueError, match=r"whole factors >= 1.*\(1.5, 1.5\)"):
        nn.Upsample(scale_factor=1.5)(x)
    with pytest.raises(ValueError, match="a multiple"):
        nn.Upsample(size=5)(x)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        F.interpolate(tg.tensor(np.zeros((2, 3))), scale_factor=2)


def test_layer_norm_layer_parameters_and_per_sample_statistics():
    ln = nn.LayerNorm((3, 2, 2))
    assert list(ln.state_dict()) == ["weight", "bias"]
    assert ln.weight.shape == (3, 2, 2) and np.all(ln.weight.numpy() == 1)
    assert np.all(ln.bias.numpy() == 0)
    assert list(nn.LayerNorm(4, elementwise_affine=False).state_dict()) == []
    assert list(nn.LayerNorm(4, bias=False).state_dict()) == ["weight"]
    assert repr(nn.LayerNorm(4)).startswith("LayerNorm((4,), eps=1e-05, elementwise_affine=True)")
    rng = np.random.default_rng(0)
    ln = nn.LayerNorm((3, 2, 2)).double()
    ln.weight.data[...] = rng.standard_normal((3, 2, 2))
    ln.bias.data[...] = rng.standard_normal((3, 2, 2))
    x = rng.standard_normal((4, 3, 2, 2)) * 3.0 + 1.0
    y = ln(tg.tensor(x)).numpy()
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = np.sqrt(x.var(axis=(1, 2, 3), keepdims=True) + 1e-5)
    expected = (x - mean) / std * ln.weight.numpy() + ln.bias.numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    x2 = x.copy()
    x2[1:] = rng.standard_normal((3, 3, 2, 2))  # other samples change; sample 0 does not
    np.testing.assert_array_equal(ln(tg.tensor(x2)).numpy()[0], y[0])
    with pytest.raises(ValueError, match=r"does not end in normalized_shape \(3, 2, 2\)"):
        ln(tg.tensor(np.zeros((4, 2, 2, 3))))
    with pytest.raises(ValueError, match="positive int"):
        nn.LayerNorm((3, 0))


def test_embedding_looks_up_rows_and_adds_gradients_of_repeated_indices():
    emb = nn.Embedding(10, 4, rng=np.random.default_rng(0))
    assert list(emb.state_dict()) == ["weight"] and emb.weight.shape == (10, 4)
    labels = np.array([3, 7, 3])
    out = emb(labels)
    assert out.shape == (3, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[labels])
    assert emb(np.array([[1, 2], [3, 4]])).shape == (2, 2, 4)
    out.sum().backward()
    expected = np.zeros((10, 4), dtype=np.float32)
    expected[3], expected[7] = 2.0, 1.0
    np.testing.assert_array_equal(emb.weight.grad.numpy(), expected)
    big = nn.Embedding(1000, 50, rng=np.random.default_rng(1)).weight.numpy()
    assert big.mean() == pytest.approx(0.0, abs=0.01) and big.std() == pytest.approx(1.0, rel=0.02)
    with pytest.raises(TypeError, match="not a Tensor"):
        emb(tg.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([1.0, 2.0]))
    with pytest.raises(IndexError, match=r"0\.\.9 for 10 embeddings, got values from -1 to 10"):
        emb(np.array([-1, 10]))


def test_embedding_on_device(device):
    emb = nn.Embedding(5, 2, rng=np.random.default_rng(0)).to(device)
    out = emb(np.array([4, 1]))  # NumPy indices for a model on any device
    assert out.device.split(":")[0] == device
    np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[[4, 1]])


def test_loss_modules_are_the_functions():
    rng = np.random.default_rng(0)
    x, y = tg.tensor(rng.standard_normal((4, 3))), tg.tensor(rng.random((4, 3)))
    assert nn.MSELoss()(x, y).item() == F.mse_loss(x, y).item()
    assert nn.MSELoss("sum")(x, y).item() == F.mse_loss(x, y, "sum").item()
    w = tg.tensor(rng.random(3))
    bce = nn.BCEWithLogitsLoss(weight=w, reduction="none")(x, y)
    np.testing.assert_array_equal(
        bce.numpy(), F.binary_cross_entropy_with_logits(x, y, w, "none").numpy()
    )
    assert repr(nn.MSELoss()) == "MSELoss(reduction='mean')"
    assert list(nn.BCEWithLogitsLoss(weight=w).state_dict()) == ["weight"]  # a buffer
    assert nn.BCEWithLogitsLoss().state_dict() == {}
    with pytest.raises(ValueError, match=r"reduction must be one of \('mean', 'sum', 'none'\)"):
        nn.BCEWithLogitsLoss(reduction="average")
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.mse_loss(x, y, "average")


# ------------------------------------------------------------------ image GAN models


@pytest.mark.parametrize("size", [32, 64, 128])
def test_upsample_generator_makes_images_of_each_size(size):
    rng = np.random.default_rng(0)
    g = models.upsample_generator(size, channels=3, z_dim=128, width=4, rng=rng)
    kinds = [type(m).__name__ for m in g]
    doublings = int(np.log2(size)) - 2  # 4x4 -> size
    assert kinds.count("Upsample") == doublings and "ConvTranspose2d" not in kinds
    assert kinds[-3:] == ["Upsample", "Conv2d", "Tanh"]
    convs = [m for m in g if isinstance(m, nn.Conv2d)]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    images = g(tg.randn(2, 128, generator=rng))
    assert images.shape == (2, 3, size, size) and images.dtype == np.float32
    assert np.abs(images.numpy()).max() <= 1.0


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_dcgan_discriminator_norms(norm):
    rng = np.random.default_rng(0)
    d = models.dcgan_discriminator(64, 3, width=4, norm=norm, rng=rng)
    kinds = {type(m).__name__ for m in d}
    assert ("BatchNorm2d" in kinds) == (norm == "batch")
    assert ("LayerNorm" in kinds) == (norm == "layer")
    x = rng.standard_normal((3, 3, 64, 64))
    scores = d(tg.tensor(x, dtype="float32")).numpy()
    assert scores.shape == (3, 1)
    # A critic scores every sample on its own, as the gradient penalty needs; BatchNorm's
    # batch statistics make sample 0's score depend on the other samples.
    x[1:] = rng.standard_normal((2, 3, 64, 64))
    again = d(tg.tensor(x, dtype="float32")).numpy()[0]
    assert np.allclose(again, scores[0], rtol=1e-5, atol=1e-7) == (norm != "batch")
    if norm == "layer":
        assert [m.normalized_shape for m in d if isinstance(m, nn.LayerNorm)] == [
            (8, 16, 16),
            (16, 8, 8),
            (32, 4, 4),
        ]
    with pytest.raises(ValueError, match="norm must be one of"):
        models.dcgan_discriminator(64, norm="instance")
