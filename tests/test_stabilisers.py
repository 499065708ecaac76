"""The stabilisers of modern GAN training: the hinge loss, the R1 penalty and spectral
normalisation. Values against NumPy formulas (and PyTorch's spectral norm where torch is
installed), gradients against finite differences in float64, first and second order where
a penalty differentiates through them."""

import copy

import numpy as np
import pytest

import tinygan as tg
from tinygan import functional as F
from tinygan import losses, nn
from tinygan.gan import LOSSES


def _scores(shape, seed=0):
    """float64 scores kept 0.1 away from the hinge's kinks at -1 and +1, so that the finite
    differences (step 1e-6) never straddle one."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(-2.5, 2.5, size=shape)
    values[np.abs(np.abs(values) - 1.0) < 0.1] += 0.3
    return tg.tensor(values, requires_grad=True)


# ----------------------------------------------------------------------------- hinge loss


@pytest.mark.parametrize("shape", [(7,), (7, 1)])
def test_hinge_losses_match_their_formulas(shape):
    real, fake = _scores(shape, 1), _scores((5,) + shape[1:], 2)
    r, f = real.numpy(), fake.numpy()
    expected_d = np.mean(np.maximum(1.0 - r, 0.0)) + np.mean(np.maximum(1.0 + f, 0.0))
    np.testing.assert_allclose(losses.hinge_d_loss(real, fake).item(), expected_d, rtol=1e-13)
    np.testing.assert_allclose(losses.hinge_g_loss(fake).item(), -np.mean(f), rtol=1e-13)


def test_hinge_gradients_match_finite_differences_first_and_second_order():
    real, fake = _scores((6, 1), 3), _scores((4, 1), 4)
    assert tg.gradcheck(losses.hinge_d_loss, [real, fake])
    assert tg.gradgradcheck(losses.hinge_d_loss, [real, fake])
    assert tg.gradcheck(losses.hinge_g_loss, [fake])
    assert tg.gradgradcheck(losses.hinge_g_loss, [fake])


def test_hinge_d_loss_matches_the_same_loss_composed_of_ops():
    from tinygan.losses_hinge import _composed_hinge_d_loss

    real, fake = _scores((6, 1), 5), _scores((4, 1), 6)
    hand = tg.grad(losses.hinge_d_loss(real, fake), [real, fake])
    composed = tg.grad(_composed_hinge_d_loss(real, fake), [real, fake])
    for a, b in zip(hand, composed):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-13, atol=0)
    np.testing.assert_allclose(
        losses.hinge_d_loss(real, fake).item(), _composed_hinge_d_loss(real, fake).item()
    )


def test_samples_beyond_their_margin_get_no_gradient():
    real = tg.tensor(np.array([2.0, 0.5]), requires_grad=True)  # beyond +1, inside
    fake = tg.tensor(np.array([-3.0, 0.0]), requires_grad=True)  # beyond -1, inside
    g_real, g_fake = tg.grad(losses.hinge_d_loss(real, fake), [real, fake])
    np.testing.assert_array_equal(g_real.numpy(), [0.0, -0.5])
    np.testing.assert_array_equal(g_fake.numpy(), [0.0, 0.5])


def test_the_hinge_family_is_in_the_loss_table():
    family = LOSSES["hinge"]
    assert family.d_loss is losses.hinge_d_loss and family.g_loss is losses.hinge_g_loss
    assert not family.logits and not family.critic
    with pytest.raises(ValueError, match="hinge_d_loss: real_out"):
        losses.hinge_d_loss(tg.tensor(np.ones((3, 2))), tg.tensor(np.ones(3)))


# ----------------------------------------------------------------------------- R1 penalty


def _critic_params(seed=0):
    rng = np.random.default_rng(seed)
    w1 = tg.tensor(rng.standard_normal((5, 3)) * 0.7, requires_grad=True)
    w2 = tg.tensor(rng.standard_normal((1, 5)) * 0.7, requires_grad=True)
    return w1, w2


def _critic(w1, w2):
    """A small smooth critic (tanh, so its input gradient depends on its weights and on x)."""
    return lambda x: F.linear(F.tanh(F.linear(x, w1)), w2)


def test_r1_of_a_linear_critic_is_half_gamma_times_the_squared_weight_norm():
    w = np.array([[0.5, -2.0, 1.0]])
    critic = nn.Linear(3, 1).double()
    critic.weight.data[...] = w
    real = tg.tensor(np.random.default_rng(0).standard_normal((4, 3)))
    penalty = losses.r1_penalty(critic, real, gamma=3.0)
    np.testing.assert_allclose(penalty.item(), 1.5 * np.sum(w**2), rtol=1e-14)


def test_r1_gradient_in_the_critics_weights_matches_finite_differences():
    """d R1 / d weights differentiates the critic's input gradient: second order."""
    real = tg.tensor(np.random.default_rng(1).standard_normal((4, 3)))
    weights = _critic_params(2)
    assert tg.gradcheck(lambda w1, w2: losses.r1_penalty(_critic(w1, w2), real, 2.0), weights)


def test_r1_trains_d_only_and_is_computable_under_no_grad():
    w1, w2 = _critic_params(3)
    real = tg.tensor(np.random.default_rng(4).standard_normal((4, 3)), requires_grad=True)
    penalty = losses.r1_penalty(_critic(w1, w2), real, 1.0)
    penalty.backward()
    assert real.grad is None and w1.grad is not None and w2.grad is not None
    with tg.no_grad():
        again = losses.r1_penalty(_critic(w1, w2), real, 1.0)
    assert not again.requires_grad
    np.testing.assert_allclose(again.item(), penalty.item(), rtol=1e-14)


@pytest.mark.parametrize("gamma", [-1.0, float("nan")])
def test_r1_refuses_a_negative_or_nan_gamma(gamma):
    with pytest.raises(ValueError, match="gamma"):
        losses.r1_penalty(_critic(*_critic_params()), tg.tensor(np.ones((2, 3))), gamma)


# ------------------------------------------------------------------------- spectral norm


def _layer(kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "linear":
        return nn.Linear(6, 4, rng=rng).double(), (3, 6)
    if kind == "conv":
        return nn.Conv2d(2, 3, 3, stride=2, padding=1, rng=rng).double(), (2, 2, 5, 5)
    return nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1, rng=rng).double(), (2, 3, 3, 3)


def _matrix(kind, weight):
    """The matrix whose top singular value spectral norm estimates (PyTorch's choice)."""
    if kind == "transposed":  # (in, out, kh, kw): the output axis, 1, first
        weight = weight.transpose(1, 0, 2, 3)
    return weight.reshape(weight.shape[0], -1)


@pytest.mark.parametrize("kind", ["linear", "conv", "transposed"])
def test_sigma_converges_to_the_largest_singular_value(kind):
    layer, shape = _layer(kind)
    nn.utils.spectral_norm(layer, rng=np.random.default_rng(1))
    x = tg.tensor(np.random.default_rng(2).standard_normal(shape))
    for _ in range(200):
        layer(x)
    top = np.linalg.svd(_matrix(kind, layer.weight_orig.numpy()), compute_uv=False)
    normalised = np.linalg.svd(_matrix(kind, layer.weight.numpy()), compute_uv=False)
    np.testing.assert_allclose(normalised[0], 1.0, rtol=1e-8)
    np.testing.assert_allclose(layer.weight.numpy() * top[0], layer.weight_orig.numpy(), rtol=1e-8)


def test_u_and_v_move_in_training_mode_only_and_the_state_dict_keeps_pytorch_keys():
    layer, shape = _layer("linear")
    nn.utils.spectral_norm(layer, rng=np.random.default_rng(1))
    assert list(layer.state_dict()) == ["bias", "weight_orig", "weight_u", "weight_v"]
    x = tg.tensor(np.ones(shape))
    layer.eval()
    before = layer.state_dict()
    layer(x)
    after_eval = layer.state_dict()
    layer.train()
    layer(x)
    after_train = layer.state_dict()
    np.testing.assert_array_equal(before["weight_u"], after_eval["weight_u"])
    assert not np.array_equal(before["weight_u"], after_train["weight_u"])
    np.testing.assert_array_equal(before["weight_orig"], after_train["weight_orig"])


@pytest.mark.parametrize("fast_paths", [True, False])
@pytest.mark.parametrize("kind", ["linear", "conv", "transposed"])
def test_spectral_norm_gradients_first_and_second_order(kind, fast_paths):
    """In eval mode (u and v fixed) the layer is a function of its input and weight_orig;
    its first and second derivatives (a gradient penalty reaches the second) are checked,
    for the composition and for its fused op (tinygan/fast/spectral_norm.py)."""
    layer, shape = _layer(kind, 3)
    nn.utils.spectral_norm(layer, rng=np.random.default_rng(4))
    layer.eval()
    x = tg.tensor(np.random.default_rng(5).standard_normal(shape), requires_grad=True)
    inputs = [x, layer.weight_orig]
    with tg.use_fast_paths(fast_paths):
        assert tg.gradcheck(lambda x, w: F.tanh(layer(x)), inputs)
        assert tg.gradgradcheck(lambda x, w: F.tanh(layer(x)), inputs)


def test_a_gradient_penalty_through_spectral_norm_matches_finite_differences():
    rng = np.random.default_rng(6)
    critic = nn.Sequential(
        nn.utils.spectral_norm(nn.Linear(3, 5, rng=rng), rng=rng),
        nn.Tanh(),
        nn.utils.spectral_norm(nn.Linear(5, 1, rng=rng), rng=rng),
    ).double()
    critic.eval()
    real = tg.tensor(rng.standard_normal((4, 3)))
    weights = [critic[0].weight_orig, critic[2].weight_orig]
    assert tg.gradcheck(lambda *w: losses.r1_penalty(critic, real, 1.0), weights)


def test_a_deep_copy_normalises_its_own_weight():
    """The EMA deep-copies G: the copy's hook must read the copy's weight_orig."""
    layer, shape = _layer("linear")
    nn.utils.spectral_norm(layer, rng=np.random.default_rng(1))
    twin = copy.deepcopy(layer)
    twin.weight_orig.data *= 2.0  # sigma doubles too: W / sigma is unchanged...
    twin.weight_orig.data[0, 0] += 1.0  # ...unless the direction changes
    layer.eval()
    twin.eval()
    x = tg.tensor(np.ones(shape))
    assert not np.allclose(layer(x).numpy(), twin(x).numpy())


def test_spectral_norm_refuses_what_it_cannot_normalise():
    layer, _ = _layer("linear")
    with pytest.raises(ValueError, match="no parameter 'kernel'"):
        nn.utils.spectral_norm(layer, name="kernel")
    nn.utils.spectral_norm(layer)
    with pytest.raises(RuntimeError, match="already normalised"):
        nn.utils.spectral_norm(layer)
    with pytest.raises(ValueError, match="n_power_iterations"):
        nn.utils.spectral_norm(nn.Linear(2, 2), n_power_iterations=-1)


@pytest.mark.parametrize("kind", ["linear", "conv", "transposed"])
def test_a_state_dict_moves_to_pytorchs_spectral_norm_and_gives_the_same_output(kind):
    torch = pytest.importorskip("torch")
    layer, shape = _layer(kind, 7)
    nn.utils.spectral_norm(layer, rng=np.random.default_rng(8))
    make = {
        "linear": lambda: torch.nn.Linear(6, 4),
        "conv": lambda: torch.nn.Conv2d(2, 3, 3, stride=2, padding=1),
        "transposed": lambda: torch.nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1),
    }[kind]
    twin = torch.nn.utils.spectral_norm(make().double())
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x = np.random.default_rng(9).standard_normal(shape)
    for training in (False, True, True):  # eval (u, v as saved), then two power iterations
        layer.train(training)
        twin.train(training)
        ours = layer(tg.tensor(x)).numpy()
        theirs = twin(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(layer.weight_u, twin.weight_u.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.weight_v, twin.weight_v.numpy(), rtol=1e-12)


def test_an_initialisation_after_spectral_norm_reaches_weight_orig():
    """As in PyTorch, ``module.weight`` is weight_orig's array until the first forward
    pass, so a DCGAN-style init applied after spectral_norm changes the trained weight."""
    from tinygan import init

    layer, _ = _layer("linear")
    nn.utils.spectral_norm(layer, rng=np.random.default_rng(1))
    init.normal_(layer.weight, std=0.02, rng=np.random.default_rng(2))
    expected = np.random.default_rng(2).normal(0.0, 0.02, (4, 6))
    np.testing.assert_allclose(layer.weight_orig.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("kind", ["linear", "conv", "transposed"])
def test_spectral_norm_runs_on_the_device_as_on_the_cpu(kind, device):
    """Training-mode forward passes (power iteration on u and v) and a gradient, on the
    device the fixture gives (the strict CuPy stand-in everywhere), against NumPy."""
    results = []
    for where in ("cpu", device):
        layer, shape = _layer(kind, 10)
        nn.utils.spectral_norm(layer, rng=np.random.default_rng(11)).to(where)
        x = tg.tensor(np.random.default_rng(12).standard_normal(shape)).to(where)
        for _ in range(3):
            out = layer(x)
        (g,) = tg.grad(out.sum(), [layer.weight_orig])
        results.append((out.numpy(), g.numpy(), tg.Tensor(layer.weight_u).numpy()))
    for cpu, on_device in zip(*results):
        np.testing.assert_allclose(on_device, cpu, rtol=1e-10, atol=1e-12)
