"""tinygan.ema: the weight average of a generator, its BatchNorm statistics, its checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinygan as tg
from tinygan import nn
from tinygan.backend import to_device, to_numpy
from tinygan.checkpoint import load_checkpoint, save_checkpoint
from tinygan.ema import EMA, recompute_batchnorm


def small_model(seed: int = 0) -> nn.Sequential:
    """Linear -> BatchNorm1d -> ReLU -> 1x1 Conv2d -> BatchNorm2d: both kinds of BatchNorm."""
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Linear(4, 12, rng=rng),
        nn.BatchNorm1d(12),
        nn.ReLU(),
        nn.Unflatten(1, (3, 2, 2)),
        nn.Conv2d(3, 2, 1, rng=rng),
        nn.BatchNorm2d(2),
    )


def perturb(model: nn.Module, rng: np.random.Generator) -> None:
    """Move every parameter of ``model`` a random step, in place (a stand-in for training)."""
    for p in model.parameters():
        p.data += rng.standard_normal(p.shape).astype(p.data.dtype)


def noise(rng: np.random.Generator, n: int) -> tg.Tensor:
    """A float32 batch (n, 4) for :func:`small_model`."""
    return tg.tensor(rng.standard_normal((n, 4), dtype=np.float32))


def arrays(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: to_numpy(v) for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- the update
def test_update_follows_the_formula_by_hand(device):
    model = nn.Linear(2, 1, rng=np.random.default_rng(0)).double().to(device)
    model.weight.data[...] = to_device(np.array([[1.0, -2.0]]), device)
    model.bias.data[...] = 4.0
    ema = EMA(model, decay=0.75)
    model.weight.data[...] = to_device(np.array([[3.0, 2.0]]), device)
    model.bias.data[...] = 0.0
    ema.update()  # 0.75 * old + 0.25 * new
    np.testing.assert_array_equal(ema.model.weight.numpy(), [[1.5, -1.0]])
    np.testing.assert_array_equal(ema.model.bias.numpy(), [3.0])
    model.bias.data[...] = 8.0
    ema.update()  # 0.75 * 3 + 0.25 * 8
    np.testing.assert_array_equal(ema.model.bias.numpy(), [4.25])
    np.testing.assert_array_equal(ema.model.weight.numpy(), [[1.875, -0.25]])


def test_update_equals_the_closed_form_average_over_many_steps():
    # After t updates from theta_0: sum_s (1 - d) d^(t-s) theta_s + d^t theta_0.
    rng = np.random.default_rng(1)
    model = nn.Linear(3, 2, rng=rng).double()
    history = [model.weight.numpy().copy()]
    decay = 0.9
    ema = EMA(model, decay)
    for _ in range(25):
        perturb(model, rng)
        history.append(model.weight.numpy().copy())
        ema.update()
    t = len(history) - 1
    expected = decay**t * history[0] + sum(
        (1 - decay) * decay ** (t - s) * history[s] for s in range(1, t + 1)
    )
    np.testing.assert_allclose(ema.model.weight.numpy(), expected, rtol=1e-13, atol=1e-13)


def test_decay_zero_makes_a_copy_and_a_still_model_keeps_its_exact_weights():
    model = small_model()
    ema = EMA(model, decay=0.0)
    perturb(model, np.random.default_rng(2))
    ema.update()
    live, avg = arrays(model), arrays(ema.model)
    assert all(np.array_equal(live[k], avg[k]) for k in live)
    ema = EMA(model, decay=0.999)
    for _ in range(5):
        ema.update()  # theta_ema - d (theta_ema - theta) with theta_ema == theta: no drift
    avg = arrays(ema.model)
    assert all(np.array_equal(live[k], avg[k]) for k in live)


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5, math.nan, math.inf, True, "0.99", None])
def test_decay_must_be_a_number_in_zero_one(decay):
    with pytest.raises(ValueError, match=r"decay must be .*\[0, 1\)"):
        EMA(nn.Linear(2, 2, rng=np.random.default_rng(0)), decay)


def test_float32_is_kept_in_place_and_outside_any_graph():
    model = small_model()
    ema = EMA(model, decay=np.float32(0.99))
    before = {k: id(v) for k, v in ema.model._named_arrays()}
    perturb(model, np.random.default_rng(3))
    ema.update()
    after = dict(ema.model._named_arrays())
    assert {k: id(v) for k, v in after.items()} == before  # the same arrays, updated in place
    assert all(p.dtype == np.float32 for p in ema.model.parameters())
    assert all(not p.requires_grad and p.grad is None and p._ctx is None
               for p in ema.model.parameters())  # fmt: skip
    assert not ema.model.training and model.training


def test_update_copies_the_buffers_of_the_live_model():
    model = small_model()
    ema = EMA(model, decay=0.9)
    model(noise(np.random.default_rng(4), 16))  # moves running stats
    ema.update()
    live, avg = arrays(model), arrays(ema.model)
    buffers = [k for k in live if "running" in k or "num_batches" in k]
    assert len(buffers) == 6
    for k in buffers:
        np.testing.assert_array_equal(avg[k], live[k])
    assert avg["1.num_batches_tracked"] == 1
    np.testing.assert_array_equal(avg["0.weight"], live["0.weight"])  # no step: still equal


def test_the_average_is_independent_of_later_changes_to_the_live_model():
    model = small_model()
    ema = EMA(model, decay=0.5)
    start = arrays(ema.model)
    perturb(model, np.random.default_rng(5))  # in place, before any update
    model(tg.tensor(np.ones((8, 4), np.float32)))  # and its buffers
    assert all(np.array_equal(start[k], v) for k, v in arrays(ema.model).items())
    ema.update()
    averaged = arrays(ema.model)
    perturb(model, np.random.default_rng(6))
    for p in model.parameters():
        p.data[...] = 0.0
    assert all(np.array_equal(averaged[k], v) for k, v in arrays(ema.model).items())


@pytest.mark.skipif(not tg.cuda_available(), reason="needs a CUDA GPU (CuPy)")
def test_a_live_model_moved_after_the_ema_was_made_is_refused():
    model = small_model()
    ema = EMA(model, decay=0.9)
    model.to("cuda")
    with pytest.raises(ValueError, match=r"ema.model.to\('cuda'\)"):
        ema.update()


# --------------------------------------------------------------------------- checkpoints
def test_state_dict_round_trip_resumes_bit_exactly(tmp_path):
    rng = np.random.default_rng(7)
    model = small_model()
    ema = EMA(model, decay=0.99)
    for _ in range(3):
        perturb(model, rng)
        model(noise(rng, 8))
        ema.update()
    save_checkpoint(tmp_path / "c.npz", generator=model, generator_ema=ema.model)

    resumed_model = small_model(seed=1)  # other weights: all must come from the file
    resumed = EMA(resumed_model, decay=0.99)
    load_checkpoint(tmp_path / "c.npz", generator=resumed_model, generator_ema=resumed.model)
    assert all(np.array_equal(a, b) for a, b in zip(arrays(ema.model).values(),
                                                    arrays(resumed.model).values()))  # fmt: skip
    for m in (model, resumed_model):  # the same further training on both
        perturb(m, np.random.default_rng(8))
    ema.update()
    resumed.update()
    a, b = arrays(ema.model), arrays(resumed.model)
    assert all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)

    other = EMA(small_model(seed=2), decay=0.99)
    other.load_state_dict(ema.state_dict())
    assert all(np.array_equal(a[k], v) for k, v in arrays(other.model).items())
    with pytest.raises(RuntimeError, match="missing key '0.bias'"):
        other.load_state_dict({k: v for k, v in ema.state_dict().items() if k != "0.bias"})


# --------------------------------------------------------------------------- BatchNorm
def test_recompute_sets_running_stats_to_the_mean_of_the_batch_statistics():
    model = small_model().double()
    ema = EMA(model, decay=0.9)
    rng = np.random.default_rng(9)
    batches = [rng.standard_normal((10 + 3 * k, 4)) for k in range(5)]  # sizes differ
    assert ema.recompute_batchnorm(batches) == 5
    got = arrays(ema.model)

    # By hand for the first layer: h = x W^T + b, its mean and unbiased variance per batch.
    w, b = got["0.weight"], got["0.bias"]
    hidden = [x @ w.T + b for x in batches]
    np.testing.assert_allclose(
        got["1.running_mean"], np.mean([h.mean(axis=0) for h in hidden], axis=0), rtol=1e-12
    )
    np.testing.assert_allclose(
        got["1.running_var"], np.mean([h.var(axis=0, ddof=1) for h in hidden], axis=0),
        rtol=1e-12,
    )  # fmt: skip

    # Every layer: each batch's statistics are what momentum 1 leaves after that batch alone.
    per_batch = []
    for x in batches:
        probe = small_model().double()
        probe.load_state_dict(ema.state_dict())
        for layer in (probe[1], probe[5]):
            layer.momentum = 1.0
        probe.train()(tg.tensor(x))
        per_batch.append(arrays(probe))
    for key in ("1.running_mean", "1.running_var", "5.running_mean", "5.running_var"):
        expected = np.mean([stats[key] for stats in per_batch], axis=0)
        np.testing.assert_allclose(got[key], expected, rtol=1e-12, atol=1e-15)

    assert [ema.model[1].momentum, ema.model[5].momentum] == [0.1, 0.1]  # restored
    assert not ema.model.training  # still in eval mode
    assert got["1.num_batches_tracked"] == 5


def test_recompute_forgets_the_old_statistics_and_keeps_the_parameters():
    model = small_model()
    batches = [np.random.default_rng(10).standard_normal((32, 4)).astype(np.float32)]
    model[1].running_mean[...] = 1e6  # nonsense that momentum 1 at the first batch discards
    params = {k: v.copy() for k, v in arrays(model).items() if "running" not in k}
    recompute_batchnorm(model, batches)
    fresh = small_model()
    recompute_batchnorm(fresh, [tg.tensor(batches[0])])  # Tensors do as well as arrays
    np.testing.assert_array_equal(model[1].running_mean, fresh[1].running_mean)
    after = arrays(model)
    assert all(np.array_equal(after[k], v) for k, v in params.items() if "num_batches" not in k)
    assert model.training  # the mode it was in


def test_recompute_needs_batches_and_skips_models_without_batchnorm():
    with pytest.raises(ValueError, match="no input batches"):
        recompute_batchnorm(small_model(), [])
    mlp = nn.Sequential(nn.Linear(4, 3, rng=np.random.default_rng(0)), nn.ReLU())
    before = arrays(mlp)

    def never():  # a model without BatchNorm runs nothing
        raise AssertionError("the inputs were read")
        yield

    assert recompute_batchnorm(mlp, never()) == 0
    assert all(np.array_equal(before[k], v) for k, v in arrays(mlp).items())
