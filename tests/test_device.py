"""The device half of the suite: what a GPU run goes through, on every device.

Every test here takes the ``device`` fixture: the CPU, a real GPU when one is usable, and
the strict CuPy stand-in (tests/strict_cupy.py), on which tinygan believes it runs on
CuPy and every NumPy call on a device array, host/device mix or implicit conversion
fails as it would on a GPU. Each computes the same thing on the device and with NumPy,
and holds the two to float64 rounding.

The op table (test_ops.py), convolutions and pooling (test_conv.py), the fast paths and
the main demo's loop (test_fast.py), the losses and the penalty's second order
(test_losses.py), the gradient checks (test_gradcheck.py) and the EMA's update
(test_ema.py) take the fixture too; this file adds the moves, the layers, the optimizers,
the EMA's BatchNorm statistics, checkpoints and a few steps of WGAN-GP.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygan as tg
from tinygan import losses, models, nn, optim
from tinygan.backend import device_of, to_numpy
from tinygan.checkpoint import load_checkpoint, save_checkpoint
from tinygan.ema import EMA
from tinygan.gan import d_step, g_step


def on(device: str, array) -> bool:
    """True when ``array`` lives on ``device`` ("cpu" or "cuda")."""
    return device_of(array).split(":")[0] == device


def host_arrays(module_or_state) -> dict[str, np.ndarray]:
    state = module_or_state if isinstance(module_or_state, dict) else module_or_state.state_dict()
    return {k: to_numpy(v) if hasattr(v, "shape") else v for k, v in state.items()}


def assert_same_arrays(got: dict, expected: dict, rtol: float = 1e-12, atol: float = 1e-12):
    assert got.keys() == expected.keys()
    for key, value in got.items():
        np.testing.assert_allclose(value, expected[key], rtol=rtol, atol=atol, err_msg=key)


# ------------------------------------------------------------------------------ moves


def test_to_moves_data_and_gradients_both_ways(device):
    values = np.random.default_rng(0).standard_normal((3, 4))
    x = tg.tensor(values, requires_grad=True)  # on the CPU
    y = x.to(device)
    assert on(device, y.data) and y.dtype == np.float64
    np.testing.assert_array_equal(y.numpy(), values)
    back = (y * 3.0).to("cpu")  # a graph across both moves
    assert isinstance(back.data, np.ndarray)
    back.sum().backward()
    assert isinstance(x.grad.data, np.ndarray)
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 4), 3.0))
    z = tg.tensor(values.astype(np.float32), device=device)
    assert on(device, z.data) and z.dtype == np.float32 and z.to(device) is z


# ------------------------------------------------------------------------------ layers

LAYERS = {
    # name: (the layer, made from an rng; the input's shape)
    "Linear": (lambda rng: nn.Linear(5, 3, rng=rng), (4, 5)),
    "Conv2d": (lambda rng: nn.Conv2d(2, 3, 3, padding=1, rng=rng), (2, 2, 5, 6)),
    "Conv2d-dcgan": (lambda rng: nn.Conv2d(2, 3, 4, 2, 1, rng=rng), (2, 2, 6, 6)),
    "ConvTranspose2d-dcgan": (lambda rng: nn.ConvTranspose2d(3, 2, 4, 2, 1, rng=rng), (2, 3, 3, 3)),
    "ConvTranspose2d": (lambda rng: nn.ConvTranspose2d(3, 1, 3, 2, 1, 1, rng=rng), (2, 3, 3, 4)),
    "BatchNorm1d": (lambda rng: nn.BatchNorm1d(4), (6, 4)),
    "BatchNorm2d": (lambda rng: nn.BatchNorm2d(2), (3, 2, 4, 4)),
    "LayerNorm": (lambda rng: nn.LayerNorm((2, 3)), (4, 2, 3)),
    "Upsample": (lambda rng: nn.Upsample(scale_factor=2), (2, 2, 3, 3)),
    "MaxPool2d": (lambda rng: nn.MaxPool2d(2), (2, 2, 4, 6)),
    "Flatten": (lambda rng: nn.Sequential(nn.Flatten(), nn.Unflatten(1, (3, 4))), (2, 3, 4)),
    "activations": (
        lambda rng: nn.Sequential(nn.LeakyReLU(0.2), nn.Tanh(), nn.ReLU(), nn.Sigmoid()),
        (3, 5),
    ),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layers_train_and_evaluate_as_with_numpy(name, device, fast_paths):
    """Forward and backward in training mode (BatchNorm updating its running statistics
    on the device), then a forward in evaluation mode, against the same layer on NumPy."""
    make, shape = LAYERS[name]
    rng = np.random.default_rng(1)
    x_values, eval_values = rng.standard_normal(shape), rng.standard_normal(shape)
    results = []
    for where in ("cpu", device):
        layer = make(np.random.default_rng(2)).double().to(where)
        x = tg.tensor(x_values, requires_grad=True, device=where)
        y = layer(x)
        g = tg.tensor(np.random.default_rng(3).standard_normal(y.shape), device=where)
        gx, *grads = tg.grad((y * g).sum(), [x, *layer.parameters()])
        eval_out = layer.eval()(tg.tensor(eval_values, device=where))
        assert all(on(where, a) for a in layer.state_dict().values() if hasattr(a, "shape"))
        grads = [g.numpy() for g in grads]
        results.append((y.numpy(), gx.numpy(), grads, host_arrays(layer), eval_out.numpy()))
    (y, gx, grads, state, eval_out), expected = results[1], results[0]
    np.testing.assert_allclose(y, expected[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, expected[1], rtol=1e-10, atol=1e-12)
    for g, e in zip(grads, expected[2]):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
    assert_same_arrays(state, expected[3])
    np.testing.assert_allclose(eval_out, expected[4], rtol=1e-12, atol=1e-12)


def test_embedding_checks_indices_where_they_are(device):
    """Host indices are checked before their copy; device indices on the device."""
    table = nn.Embedding(5, 3, rng=np.random.default_rng(4)).double().to(device)
    for indices in (np.array([4, 0, 4]), table.weight.xp.asarray(np.array([1, 3]))):
        rows = table(indices)
        assert on(device, rows.data)
        np.testing.assert_array_equal(rows.numpy(), table.weight.numpy()[to_numpy(indices)])
    with pytest.raises(IndexError, match=r"indices must be in 0..4 for 5 embeddings"):
        table(np.array([0, 5]))


# ------------------------------------------------------------------------------ optimizers

OPTIMIZERS = {
    "adam": lambda ps: optim.Adam(ps, lr=0.01, betas=(0.5, 0.9), weight_decay=0.01),
    "sgd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizers_step_as_with_numpy_and_move_their_state(name, device, fast_paths):
    """Four steps on the device and on NumPy: the same parameters and state. The device
    optimizer's state dict then continues on NumPy, and the NumPy one's on the device."""
    rng = np.random.default_rng(5)
    start = [rng.standard_normal(s) for s in [(3, 4), (5,), (2, 1, 3)]]
    grads = [[rng.standard_normal(a.shape) for a in start] for _ in range(5)]
    runs = {}
    for where in ("cpu", device):
        params = [tg.tensor(a, requires_grad=True, device=where) for a in start]
        opt = OPTIMIZERS[name](params)
        for step_grads in grads[:4]:
            for p, g in zip(params, step_grads):
                p.grad = tg.tensor(g, device=where)
            opt.step()
        assert all(on(where, v) for v in opt.state_dict().values() if hasattr(v, "shape"))
        runs[where] = params, opt
    (cpu_params, cpu_opt), (dev_params, dev_opt) = runs["cpu"], runs[device]
    for p, q in zip(dev_params, cpu_params):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-12, atol=1e-12)
    assert_same_arrays(host_arrays(dev_opt.state_dict()), host_arrays(cpu_opt.state_dict()))

    swapped = []
    for state, where in ((dev_opt.state_dict(), "cpu"), (cpu_opt.state_dict(), device)):
        params = [tg.tensor(p.numpy(), requires_grad=True, device=where) for p in cpu_params]
        opt = OPTIMIZERS[name](params)
        opt.load_state_dict(state)  # arrays copied to each parameter's device
        for p, g in zip(params, grads[4]):
            p.grad = tg.tensor(g, device=where)
        opt.step()
        assert all(on(where, v) for v in opt.state_dict().values() if hasattr(v, "shape"))
        swapped.append([p.numpy() for p in params])
    for a, b in zip(*swapped):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ EMA


def small_generator(seed: int) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Linear(4, 12, rng=rng), nn.BatchNorm1d(12), nn.ReLU(), nn.Unflatten(1, (3, 2, 2)),
        nn.ConvTranspose2d(3, 2, 4, 2, 1, rng=rng), nn.BatchNorm2d(2), nn.Tanh(),
    ).double()  # fmt: skip


def test_ema_updates_and_recomputes_batchnorm_as_with_numpy(device):
    rng = np.random.default_rng(6)
    shapes = [p.shape for p in small_generator(0).parameters()]
    steps = [[rng.standard_normal(s) for s in shapes] for _ in range(3)]
    batches = [rng.standard_normal((8 + k, 4)) for k in range(3)]
    results = []
    for where in ("cpu", device):
        model = small_generator(0).to(where)
        ema = EMA(model, decay=0.9)
        for step in steps:
            for p, change in zip(model.parameters(), step):
                p.data += tg.tensor(change, device=where).data
            model(tg.tensor(batches[0], device=where))
            ema.update()
        assert ema.recompute_batchnorm([tg.tensor(b, device=where) for b in batches]) == 3
        assert all(on(where, a) for a in ema.model.state_dict().values() if hasattr(a, "shape"))
        results.append(host_arrays(ema.model))
    assert_same_arrays(results[1], results[0])


# ------------------------------------------------------------------------------ checkpoints


def test_checkpoints_save_device_arrays_and_restore_them_on_the_device(device, tmp_path):
    """A model, its optimizer and its EMA trained on the device, saved, restored into fresh
    objects on the device (their arrays land there) and on the CPU: the same numbers, and
    one more identical step on both gives the same weights."""
    rng = np.random.default_rng(7)
    z = [rng.standard_normal((6, 4)) for _ in range(3)]

    def step(model, opt, ema, noise, where):
        out = model(tg.tensor(noise, device=where))
        opt.minimize((out * out).mean())
        ema.update()

    model = small_generator(0).to(device)
    opt = optim.Adam(model.parameters(), lr=0.01)
    ema = EMA(model, decay=0.5)
    for noise in z[:2]:
        step(model, opt, ema, noise, device)
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, generator=model, opt_g=opt, generator_ema=ema.model, step=2)
    tg.save(model.state_dict(), tmp_path / "weights.npz")

    restored = {}
    for where in (device, "cpu"):
        fresh = small_generator(1).to(where)  # other weights: everything comes from the file
        fresh_opt = optim.Adam(fresh.parameters(), lr=0.01)
        fresh_ema = EMA(fresh, decay=0.5)
        objects = dict(generator=fresh, opt_g=fresh_opt, generator_ema=fresh_ema.model)
        assert load_checkpoint(path, **objects)["step"] == 2
        for obj in (fresh, fresh_ema.model):
            assert all(on(where, a) for a in obj.state_dict().values() if hasattr(a, "shape"))
        assert_same_arrays(host_arrays(fresh), host_arrays(model), rtol=0, atol=0)
        assert_same_arrays(host_arrays(fresh_ema.model), host_arrays(ema.model), rtol=0, atol=0)
        step(fresh, fresh_opt, fresh_ema, z[2], where)
        restored[where] = host_arrays(fresh)
    assert_same_arrays(restored[device], restored["cpu"])

    weights = tg.load(tmp_path / "weights.npz", map_location=device)
    assert all(on(device, a) for a in weights.values())
    assert_same_arrays(host_arrays(weights), host_arrays(model), rtol=0, atol=0)


# ------------------------------------------------------------------------------ WGAN-GP


def test_wgan_gp_steps_agree_with_numpy(device):
    """Two steps of the shared loop's WGAN-GP updates (two critic updates with the gradient
    penalty, a second derivative through DCGAN-28's fused convolutions, then one generator
    update) in float64, on the device and on NumPy: the same losses, penalties and
    weights."""
    images = np.random.default_rng(8).uniform(-1, 1, (8, 1, 28, 28))
    runs = []
    for where in ("cpu", device):
        G, D = models.mnist_models("dcgan", 16, d_batchnorm=False, seed=0)
        G, D = G.double().to(where), D.double().to(where)
        opt_g = optim.Adam(G.parameters(), lr=1e-4, betas=(0.5, 0.9))
        opt_d = optim.Adam(D.parameters(), lr=1e-4, betas=(0.5, 0.9))
        noise, history = np.random.default_rng(9), []
        for step in range(2):
            for j in range(2):
                real = tg.tensor(images[4 * j : 4 * j + 4], device=where)
                fake = G(tg.tensor(noise.standard_normal((4, 16)), device=where))
                gp_rng = np.random.default_rng([step, j])
                d = d_step(D, opt_d, losses.wgan_d_loss, real, fake.detach(), 10.0, gp_rng)
                history += [d.loss.item(), d.penalty.item()]
            history.append(g_step(D, opt_g, losses.wgan_g_loss, fake).item())
        runs.append((np.array(history), host_arrays(G), host_arrays(D)))
    (history, g_state, d_state), expected = runs[1], runs[0]
    np.testing.assert_allclose(history, expected[0], rtol=1e-9)
    assert_same_arrays(g_state, expected[1], rtol=1e-9, atol=1e-9)
    assert_same_arrays(d_state, expected[2], rtol=1e-9, atol=1e-9)
