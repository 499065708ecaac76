"""Version counters: a backward through a graph whose tensors changed in place raises.

Every Tensor counts the changes of its ``.data``; each recorded op notes its inputs'
counts at forward and the graph walk compares them before the op's backward. The classic
mistake is a GAN loop that steps D between computing G's loss (through D) and calling
``backward`` on it; without the check, G's gradient is silently computed with D's new
weights.
"""

import numpy as np
import pytest

import tinygan as tg
from tinygan import functional as F
from tinygan import init, losses, nn, optim
from tinygan.ema import EMA
from tinygan.extras.errors import ChangedInPlaceError


def _gan(seed: int = 0):
    rng = np.random.default_rng(seed)
    G = nn.Sequential(nn.Linear(4, 8, rng=rng), nn.ReLU(), nn.Linear(8, 3, rng=rng))
    D = nn.Sequential(nn.Linear(3, 8, rng=rng), nn.LeakyReLU(0.2), nn.Linear(8, 1, rng=rng))
    z = tg.tensor(rng.standard_normal((5, 4)).astype(np.float32))
    real = tg.tensor(rng.standard_normal((5, 3)).astype(np.float32))
    return G, D, z, real


def test_stepping_d_between_g_loss_and_its_backward_raises_naming_the_parameter(fast_paths):
    G, D, z, real = _gan()
    opt_d = optim.Adam(D.parameters(), lr=1e-2)
    fake = G(z)
    g_loss = losses.gan_g_loss(D(fake))
    d_loss = losses.gan_d_loss(D(real), D(fake.detach()))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    with pytest.raises(ChangedInPlaceError) as caught:
        g_loss.backward()
    message = str(caught.value)
    assert "of Sequential" in message and "was changed in place" in message
    assert "parameter 2." in message  # D's last layer: the first op the walk meets
    assert "Compute the loss after the update" in message
    assert isinstance(caught.value, RuntimeError)  # PyTorch raises a RuntimeError too


def test_the_loop_in_the_right_order_gives_g_the_true_gradient(fast_paths):
    """The demos' order (D step, then G's loss through the updated D) raises nothing, and
    G's gradient equals the one computed from scratch with the updated D."""
    G, D, z, real = _gan()
    opt_d = optim.Adam(D.parameters(), lr=1e-2)
    fake = G(z)
    opt_d.minimize(losses.gan_d_loss(D(real), D(fake.detach())))
    G_params = list(G.parameters())
    grads = tg.grad(losses.gan_g_loss(D(fake)), G_params)
    fresh = tg.grad(losses.gan_g_loss(D(G(z))), G_params)
    for g, expected in zip(grads, fresh):
        np.testing.assert_array_equal(g.numpy(), expected.numpy())


@pytest.mark.parametrize(
    "change",
    [
        "sgd",
        "adam",
        "assign",
        "load_state_dict",
        "init",
    ],
)
def test_every_kind_of_in_place_change_of_a_weight_is_seen(change):
    rng = np.random.default_rng(1)
    layer = nn.Linear(3, 2, bias=False, rng=rng)
    x = tg.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    loss = (layer(x) * layer(x)).sum()
    if change in ("sgd", "adam"):
        layer.weight.grad = tg.Tensor(np.ones((2, 3), dtype=np.float32))
        opt = optim.SGD([layer.weight], lr=0.1) if change == "sgd" else optim.Adam([layer.weight])
        opt.step()
    elif change == "assign":
        layer.weight.data = layer.weight.data * 2.0
    elif change == "load_state_dict":
        layer.load_state_dict(layer.state_dict())  # the same values: still a change
    else:
        init.normal_(layer.weight, std=0.1, rng=rng)
    with pytest.raises(ChangedInPlaceError, match=r"parameter weight of Linear \(shape \(2, 3\)\)"):
        loss.backward()


def test_a_changed_input_that_is_not_a_parameter_and_a_changed_output_are_seen():
    x = tg.tensor(np.arange(1.0, 4.0), requires_grad=True)
    scale = tg.tensor(np.array([2.0, 3.0, 4.0]))
    y = x * scale
    scale.data *= 10.0  # dy/dx is the old scale: the gradient would be 10x too large
    with pytest.raises(ChangedInPlaceError, match=r"Mul.backward: a tensor of shape \(3,\)"):
        y.sum().backward()
    t = F.tanh(x)  # tanh's backward reads its output: 1 - t^2
    t.data *= 0.5
    with pytest.raises(ChangedInPlaceError, match="Tanh.backward"):
        t.backward(np.ones(3))


def test_the_path_names_nested_modules_and_tg_grad_checks_too():
    class Critic(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            rng = np.random.default_rng(2)
            self.net = nn.Sequential(nn.Linear(2, 4, rng=rng), nn.Tanh(), nn.Linear(4, 1, rng=rng))

        def forward(self, x):
            return self.net(x)

    critic = Critic()
    x = tg.tensor(np.ones((3, 2), dtype=np.float32), requires_grad=True)
    score = critic(x).sum()
    critic.net[0].weight.data -= 0.1
    with pytest.raises(ChangedInPlaceError, match=r"parameter net\.0\.weight of Critic"):
        tg.grad(score, [x])


def test_a_penalty_graph_built_with_create_graph_is_checked_at_its_second_backward():
    """WGAN-GP's penalty differentiates a gradient graph; stepping the critic after
    building it and before its backward is caught like a first-order graph."""
    rng = np.random.default_rng(3)
    critic = nn.Sequential(nn.Linear(2, 8, rng=rng), nn.Tanh(), nn.Linear(8, 1, rng=rng))
    x = tg.tensor(rng.standard_normal((4, 2)), requires_grad=True).double()
    critic.double()
    penalty = losses.gradient_penalty(critic, x, x * 0.5, rng=rng)
    opt = optim.SGD(critic.parameters(), lr=0.1)
    opt.minimize(critic(x).sum())
    with pytest.raises(ChangedInPlaceError):
        penalty.backward()


def test_the_ema_average_counts_as_a_change_of_the_averaged_weights():
    G, _, z, _ = _gan()
    ema = EMA(G, 0.9)
    z.requires_grad = True
    out = ema.model(z).sum()
    ema.update()
    with pytest.raises(ChangedInPlaceError, match="of Sequential"):
        out.backward()


def test_a_backward_right_after_forward_and_a_retained_graph_before_any_change_are_fine():
    rng = np.random.default_rng(4)
    layer = nn.Linear(3, 2, rng=rng)
    x = tg.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    loss = layer(x).sum()
    loss.backward(retain_graph=True)
    first = layer.weight.grad.numpy().copy()
    loss.backward()  # the same graph again, nothing changed: accumulates
    np.testing.assert_allclose(layer.weight.grad.numpy(), 2 * first)


def test_views_and_detached_tensors_share_the_count_of_what_they_view():
    """A reshape or transpose is a view of its input's memory, and ``detach()`` the same
    array: a change through any of them is a change of all (as PyTorch's shared counters)."""
    w = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    x = tg.tensor(np.ones((3, 2)))
    x_flat = x.reshape(6)  # not recorded (x needs no gradient), still a view of x
    y = (x_flat * w.reshape(6)).sum()
    x.data *= 3.0
    with pytest.raises(ChangedInPlaceError, match=r"Mul.backward: a tensor of shape \(6,\)"):
        y.backward()
    y = (x.transpose() * w).sum()
    w.detach().data -= 1.0  # the same array as w's
    with pytest.raises(ChangedInPlaceError, match=r"Mul.backward: a tensor of shape \(2, 3\)"):
        y.backward()
