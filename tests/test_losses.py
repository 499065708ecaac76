"""GAN losses: values against NumPy formulas, hand-derived gradients against finite
differences and against the same loss composed from primitive ops, extreme logits, and the
WGAN-GP gradient penalty's second-order gradient."""

from functools import partial

import numpy as np
import pytest

import tinygan as tg
from tinygan import functional as F
from tinygan import losses, losses_gan, losses_wgan, nn


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# One row per loss: (id, loss, the same loss composed from ops, a plain NumPy formula,
# number of score inputs). The NumPy formulas are the textbook ones (log of sigmoid), valid
# for the moderate scores used with them.
LOSSES = [
    (
        "gan_d",
        losses.gan_d_loss,
        losses_gan._composed_gan_d_loss,
        lambda r, f: -np.mean(np.log(_sigmoid(r))) - np.mean(np.log(1.0 - _sigmoid(f))),
        2,
    ),
    (
        "gan_g",
        losses.gan_g_loss,
        losses_gan._composed_gan_g_loss,
        lambda f: -np.mean(np.log(_sigmoid(f))),
        1,
    ),
    (
        "gan_g_saturating",
        partial(losses.gan_g_loss, saturating=True),
        partial(losses_gan._composed_gan_g_loss, saturating=True),
        lambda f: np.mean(np.log(1.0 - _sigmoid(f))),
        1,
    ),
    (
        "lsgan_d",
        losses.lsgan_d_loss,
        losses._composed_lsgan_d_loss,
        lambda r, f: 0.5 * np.mean((r - 1.0) ** 2) + 0.5 * np.mean(f**2),
        2,
    ),
    (
        "lsgan_g",
        losses.lsgan_g_loss,
        losses._composed_lsgan_g_loss,
        lambda f: 0.5 * np.mean((f - 1.0) ** 2),
        1,
    ),
    (
        "wgan_d",
        losses.wgan_d_loss,
        losses_wgan._composed_wgan_d_loss,
        lambda r, f: np.mean(f) - np.mean(r),
        2,
    ),
    ("wgan_g", losses.wgan_g_loss, losses_wgan._composed_wgan_g_loss, lambda f: -np.mean(f), 1),
]
IDS = [row[0] for row in LOSSES]


def _scores(n_inputs, shapes=((5,), (7,)), scale=2.0, seed=0, device="cpu"):
    """Float64 leaf tensors; real and fake batches of different sizes on purpose."""
    rng = np.random.default_rng(seed)
    arrays = [scale * rng.standard_normal(shape) for shape in shapes[-n_inputs:]]
    return arrays, [tg.tensor(a, requires_grad=True, device=device) for a in arrays]


@pytest.mark.parametrize("shapes", [((5,), (7,)), ((5, 1), (7, 1))], ids=["(N,)", "(N,1)"])
@pytest.mark.parametrize(("name", "loss", "composed", "reference", "n"), LOSSES, ids=IDS)
def test_value_matches_numpy_formula(name, loss, composed, reference, n, shapes):
    arrays, tensors = _scores(n, shapes)
    out = loss(*tensors)
    assert out.shape == ()
    np.testing.assert_allclose(out.item(), reference(*arrays), rtol=1e-12)


@pytest.mark.parametrize(("name", "loss", "composed", "reference", "n"), LOSSES, ids=IDS)
def test_gradient_matches_finite_differences(name, loss, composed, reference, n):
    _, tensors = _scores(n)
    assert tg.gradcheck(loss, tensors)


@pytest.mark.parametrize(("name", "loss", "composed", "reference", "n"), LOSSES, ids=IDS)
def test_hand_derived_backward_is_differentiable(name, loss, composed, reference, n):
    _, tensors = _scores(n)
    assert tg.gradgradcheck(loss, tensors)


@pytest.mark.parametrize(("name", "loss", "composed", "reference", "n"), LOSSES, ids=IDS)
def test_matches_loss_composed_from_ops(name, loss, composed, reference, n, device):
    _, tensors = _scores(n, shapes=((6, 1), (4, 1)), device=device)
    value, by_hand = loss(*tensors), tg.grad(loss(*tensors), tensors)
    expected, by_ops = composed(*tensors), tg.grad(composed(*tensors), tensors)
    np.testing.assert_allclose(value.item(), expected.item(), rtol=1e-12)
    for g_hand, g_ops in zip(by_hand, by_ops):
        np.testing.assert_allclose(g_hand.numpy(), g_ops.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("name", "loss", "composed", "reference", "n"), LOSSES, ids=IDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_logits_stay_finite(name, loss, composed, reference, n, dtype, device):
    extreme = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    tensors = [tg.tensor(extreme, dtype=dtype, requires_grad=True, device=device) for _ in range(n)]
    out = loss(*tensors)
    assert out.dtype == dtype
    assert np.isfinite(out.item())
    for g in tg.grad(out, tensors):
        assert g.dtype == dtype
        assert np.all(np.isfinite(g.numpy()))


def test_bce_values_and_gradients_at_extreme_logits():
    # Confident and right: loss 0. Confident and wrong: loss 1000, gradient -+1/n, not nan.
    right_r = tg.tensor([1000.0, 1000.0], dtype="float64", requires_grad=True)
    right_f = tg.tensor([-1000.0, -1000.0], dtype="float64", requires_grad=True)
    assert losses.gan_d_loss(right_r, right_f).item() == 0.0
    wrong_r = tg.tensor([-1000.0, -1000.0], dtype="float64", requires_grad=True)
    wrong_f = tg.tensor([1000.0, 1000.0], dtype="float64", requires_grad=True)
    loss = losses.gan_d_loss(wrong_r, wrong_f)
    assert loss.item() == pytest.approx(2000.0)
    g_r, g_f = tg.grad(loss, [wrong_r, wrong_f])
    np.testing.assert_allclose(g_r.numpy(), [-0.5, -0.5])
    np.testing.assert_allclose(g_f.numpy(), [0.5, 0.5])


def test_saturating_generator_loss_saturates_when_the_generator_loses():
    # D confidently rejects the fakes (f << 0): the minimax loss gives G almost no gradient,
    # the non-saturating loss gives it the full -1/n.
    f = tg.tensor([-20.0, -20.0], dtype="float64", requires_grad=True)
    (g_sat,) = tg.grad(losses.gan_g_loss(f, saturating=True), [f])
    (g_ns,) = tg.grad(losses.gan_g_loss(f), [f])
    assert np.all(np.abs(g_sat.numpy()) < 1e-8)
    np.testing.assert_allclose(g_ns.numpy(), [-0.5, -0.5], rtol=1e-8)


@pytest.mark.parametrize(
    "bad", [(4, 2), (4, 1, 1), (), (0,)], ids=["(N,2)", "(N,1,1)", "scalar", "empty"]
)
@pytest.mark.parametrize(("name", "loss", "composed", "reference", "n"), LOSSES, ids=IDS)
def test_bad_shapes_raise_clear_errors(name, loss, composed, reference, n, bad):
    good = tg.tensor(np.zeros(4))
    args = [good] * (n - 1) + [tg.tensor(np.zeros(bad))]
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, 1\)"):
        loss(*args)


def test_non_tensor_scores_raise_type_error():
    with pytest.raises(TypeError, match="must be a Tensor"):
        losses.gan_g_loss(np.zeros(3))


def test_mixed_dtypes_raise():
    with pytest.raises(TypeError, match="dtype mismatch"):
        losses.gan_d_loss(tg.tensor(np.zeros(3), dtype="float32"), tg.tensor(np.zeros(3)))


# --------------------------------------------------------------------- gradient penalty


def _linear_critic(w):
    """critic(x) = <w, x_i> for each sample: its input gradient is w for every sample."""
    return lambda x: F.matmul(x.reshape(x.shape[0], -1), w)


def test_gradient_penalty_value_for_a_linear_critic(device):
    rng = np.random.default_rng(0)
    w_np = rng.standard_normal((12, 1))
    w = tg.tensor(w_np, requires_grad=True, device=device)
    real = tg.tensor(rng.standard_normal((5, 3, 2, 2)), device=device)
    fake = tg.tensor(rng.standard_normal((5, 3, 2, 2)), device=device)
    penalty = losses.gradient_penalty(_linear_critic(w), real, fake, weight=10.0)
    expected = 10.0 * (np.sqrt(np.sum(w_np**2) + losses.GP_SQRT_EPS) - 1.0) ** 2
    np.testing.assert_allclose(penalty.item(), expected, rtol=1e-12)
    # d/dw of 10 (||w|| - 1)^2 = 20 (||w|| - 1) w / ||w||, a second-order path through grad.
    penalty.backward()
    norm = np.sqrt(np.sum(w_np**2) + losses.GP_SQRT_EPS)
    np.testing.assert_allclose(w.grad.numpy(), 20.0 * (norm - 1.0) * w_np / norm, rtol=1e-10)


def _conv_critic(seed):
    """A small float64 conv critic with LeakyReLU and no BatchNorm, as WGAN-GP requires."""
    rng = np.random.default_rng(seed)
    critic = nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1, rng=rng),  # (N, 3, 3, 3)
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(27, 1, rng=rng),
    )
    return critic.double()


def test_gradient_penalty_gradient_matches_finite_differences(device):
    # The gradient of the penalty with respect to the critic's parameters differentiates the
    # critic's input gradient: a true second-order quantity. Hold it against central
    # differences of the penalty itself, with eps fixed by a freshly seeded rng each call.
    critic = _conv_critic(seed=1).to(device)
    rng = np.random.default_rng(2)
    real = tg.tensor(rng.standard_normal((4, 1, 6, 6)), device=device)
    fake = tg.tensor(rng.standard_normal((4, 1, 6, 6)), device=device)

    def penalty():
        return losses.gradient_penalty(critic, real, fake, rng=np.random.default_rng(3))

    critic.zero_grad()
    penalty().backward()
    step, checked = 1e-6, []
    for name, p in critic.named_parameters():
        flat = p.data.reshape(-1)  # a view: perturbing it perturbs the critic
        numeric = np.empty(flat.size)
        for i in range(flat.size):
            original = float(flat[i])  # a copy: on CuPy, flat[i] is a view
            flat[i] = original + step
            plus = penalty().item()
            flat[i] = original - step
            minus = penalty().item()
            flat[i] = original
            numeric[i] = (plus - minus) / (2 * step)
        # Biases only move LeakyReLU's kinks or shift the score: no path to the penalty.
        analytic = np.zeros(flat.size) if p.grad is None else p.grad.numpy().reshape(-1)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7, err_msg=name)
        checked.append(name if p.grad is not None else None)
    assert checked == ["0.weight", None, "3.weight", None]


def test_gradient_penalty_at_zero_gradient_is_finite():
    # A critic whose ReLU is dead everywhere has input gradient exactly 0: the norm's sqrt
    # would be differentiated at 0, which the 1e-12 shift keeps finite (and zero).
    w = tg.tensor(np.ones((4, 1)), requires_grad=True)

    def critic(x):
        return F.relu(F.matmul(x, w) - 100.0)

    real, fake = tg.tensor(np.zeros((3, 4))), tg.tensor(np.ones((3, 4)))
    penalty = losses.gradient_penalty(critic, real, fake, weight=10.0)
    assert penalty.item() == pytest.approx(10.0 * (1e-6 - 1.0) ** 2)
    penalty.backward()
    assert np.all(np.isfinite(w.grad.numpy()))


def test_gradient_penalty_is_reproducible_and_computable_under_no_grad():
    critic = _conv_critic(seed=4)
    rng = np.random.default_rng(5)
    real = tg.tensor(rng.standard_normal((3, 1, 6, 6)))
    fake = tg.tensor(rng.standard_normal((3, 1, 6, 6)))
    a = losses.gradient_penalty(critic, real, fake, rng=np.random.default_rng(0))
    b = losses.gradient_penalty(critic, real, fake, rng=np.random.default_rng(0))
    assert a.item() == b.item() and a.requires_grad
    with tg.no_grad():
        c = losses.gradient_penalty(critic, real, fake, rng=np.random.default_rng(0))
    assert c.item() == a.item() and not c.requires_grad


def test_gradient_penalty_rejects_mismatched_batches():
    critic = _conv_critic(seed=0)
    with pytest.raises(ValueError, match="same shape"):
        losses.gradient_penalty(
            critic, tg.tensor(np.zeros((2, 1, 6, 6))), tg.tensor(np.zeros((3, 1, 6, 6)))
        )
