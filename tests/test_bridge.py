"""tinygan.bridge and demos/continue_in_pytorch.py: the same models, and the same run, in PyTorch.

* torch stays optional: ``import tinygan`` never imports it, and without it the bridge
  says how to install the extra (this runs without torch too).
* Every model of tinygan.models (and the semi-supervised classifier, and layers under
  spectral normalisation) goes to PyTorch and back: in float64 the outputs agree to
  1e-10 in training and in evaluation mode, so do the BatchNorm statistics (and spectral
  norm's u and v) a training step leaves and the gradients of a loss; the way back gives
  PyTorch's arrays bit for bit. A module without a counterpart is refused by name.
* Adam's moments and step counts carry over, so the next step is the same on both sides.
* The demo continues a 20-step tinygan run: 10 steps in one process match 10 steps of
  tinygan from the same checkpoint to float32 rounding; then 2 gloo processes on
  127.0.0.1 continue that run again; each checkpoint loads back into tinygan.

Everything that needs torch skips without it.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygan as tg
from tinygan import models, nn, optim, semi_supervised
from tinygan.checkpoint import load_checkpoint, read_checkpoint
from tinygan.ema import EMA
from tinygan.utils.cli import run_main

ROOT = Path(__file__).resolve().parent.parent
DEMOS = ROOT / "demos"


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def bridge(torch):
    from tinygan import bridge

    return bridge


def test_torch_stays_an_optional_extra():
    script = (
        "import sys\n"
        "import tinygan, tinygan.models, tinygan.train, tinygan.utils.run\n"
        "assert 'torch' not in sys.modules, 'import tinygan imported torch'\n"
        "sys.modules['torch'] = None  # as if torch were not installed\n"
        "try:\n"
        "    import tinygan.bridge\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert 'pip install -e ".[torch]"' in result.stdout


# ------------------------------------------------------------------ models both ways


def _z(n: int, z_dim: int):
    return lambda rng: [rng.standard_normal((n, z_dim))]


def _images(n: int, c: int, size: int):
    return lambda rng: [rng.uniform(-1, 1, (n, c, size, size))]


def _with_labels(inputs):
    return lambda rng: [*inputs(rng), rng.integers(0, 10, inputs(rng)[0].shape[0])]


# name -> (the model from an rng, its inputs from an rng): small sizes, every architecture.
MODELS = {
    "mlp": (lambda rng: models.mlp([3, 8, 8, 1], batch_norm=True, rng=rng), _z(4, 3)),
    "mlp_generator": (
        lambda rng: models.mlp_generator(6, 16, (1, 4, 4), batch_norm=True, rng=rng),
        _z(4, 6),
    ),
    "mlp_discriminator": (
        lambda rng: models.mlp_discriminator((1, 4, 4), 16, rng=rng),
        _images(4, 1, 4),
    ),
    "dcgan28_generator": (lambda rng: models.dcgan28_generator(6, rng=rng), _z(4, 6)),
    "dcgan28_discriminator": (
        lambda rng: models.dcgan28_discriminator(rng=rng),
        _images(4, 1, 28),
    ),
    "ConditionalGenerator": (
        lambda rng: models.ConditionalGenerator(6, rng=rng),
        _with_labels(_z(4, 6)),
    ),
    "ProjectionDiscriminator": (
        lambda rng: models.ProjectionDiscriminator(rng=rng),
        _with_labels(_images(4, 1, 28)),
    ),
    "dcgan_generator": (lambda rng: models.dcgan_generator(32, 3, 6, 4, rng=rng), _z(4, 6)),
    "upsample_generator": (
        lambda rng: models.upsample_generator(32, 3, 6, 4, rng=rng),
        _z(4, 6),
    ),
    "dcgan_discriminator": (
        lambda rng: models.dcgan_discriminator(32, 3, 4, rng=rng),
        _images(4, 3, 32),
    ),
    "dcgan_discriminator-layer": (
        lambda rng: models.dcgan_discriminator(32, 3, 4, norm="layer", rng=rng),
        _images(4, 3, 32),
    ),
    "lenet": (lambda rng: models.lenet(rng=rng), _images(4, 1, 28)),
}
PAIRS = {"mnist_models", "conditional_mnist_models"}  # pairs of the models above


def _spectral_normed(rng):
    """Spectral normalisation on a transposed conv (dim 1), a conv (2 power iterations)
    and a linear layer: ``weight_orig``, ``weight_u`` and ``weight_v`` on both sides."""
    sn = nn.utils.spectral_norm
    return nn.Sequential(
        sn(nn.ConvTranspose2d(2, 3, 4, 2, 1, rng=rng), rng=rng),
        nn.LeakyReLU(0.2),
        sn(nn.Conv2d(3, 4, 3, 2, 1, rng=rng), n_power_iterations=2, rng=rng),
        nn.Flatten(),
        sn(nn.Linear(64, 1, rng=rng), rng=rng),
    )


EXTRAS = {  # not in tinygan.models: what the demos and nn.utils add
    "mlp_classifier": (  # noise 0, so that training mode is deterministic on both sides
        lambda rng: semi_supervised.mlp_classifier(10, 16, (8, 8), 0.0, 0.0, rng=rng),
        _images(4, 1, 4),
    ),
    "spectral_norm": (_spectral_normed, _images(4, 2, 4)),
}


def test_the_round_trips_cover_every_model():
    builders = {
        name
        for name, obj in vars(models).items()
        if callable(obj) and getattr(obj, "__module__", "") == models.__name__
    }
    public = {name for name in builders if not name.startswith("_")}
    assert public - PAIRS == {name.split("-")[0] for name in MODELS}


def _close(ours, theirs, what: str, tol: float = 1e-10) -> float:
    """Assert |ours - theirs| <= tol * max(1, |ours|); return the largest difference."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, what
    diff = float(np.abs(ours - theirs).max()) if ours.size else 0.0
    assert diff <= tol * max(1.0, float(np.abs(ours).max())), f"{what}: differs by {diff:.3g}"
    return diff


def _tensors(torch, arrays, requires_grad: bool):
    """torch tensors of the inputs: floats (with requires_grad), integer labels as they are."""
    return [torch.tensor(a, requires_grad=requires_grad and a.dtype.kind == "f") for a in arrays]


@pytest.mark.parametrize("name", [*MODELS, *EXTRAS])
def test_a_model_goes_to_pytorch_and_back_with_the_same_outputs_and_gradients(name, torch, bridge):
    build, make_inputs = {**MODELS, **EXTRAS}[name]
    rng = np.random.default_rng(0)
    ours = build(rng).double()
    inputs = make_inputs(rng)
    twin = bridge.to_torch(ours)
    assert all(p.dtype == torch.float64 for p in twin.parameters())

    # Training mode: the outputs, a random vector-Jacobian product, the statistics left.
    xs = [tg.tensor(a, requires_grad=True) if a.dtype.kind == "f" else a for a in inputs]
    txs = _tensors(torch, inputs, requires_grad=True)
    out, tout = ours(*xs), twin(*txs)
    _close(out.numpy(), tout.detach().numpy(), f"{name}: training-mode outputs")
    weights = rng.standard_normal(out.shape)
    loss = (out * tg.tensor(weights)).sum()
    tloss = (tout * torch.from_numpy(weights)).sum()
    names = [k for k, _ in ours.named_parameters()]
    wrt = [p for _, p in ours.named_parameters()] + [xs[0]]
    twin_params = dict(twin.named_parameters())
    twrt = [twin_params[k] for k in names] + [txs[0]]
    for key, g, tgrad in zip(
        names + ["input"], tg.grad(loss, wrt), torch.autograd.grad(tloss, twrt)
    ):
        _close(g.numpy(), tgrad.numpy(), f"{name}: d loss / d {key}")
    for key, array in ours.state_dict().items():
        _close(array, twin.state_dict()[key].numpy(), f"{name}: {key} after a training step")

    # Evaluation mode (BatchNorm's running statistics), and the way back.
    ours.eval(), twin.eval()
    with torch.no_grad():
        expected = twin(*_tensors(torch, inputs, requires_grad=False)).numpy()
    _close(ours(*xs).numpy(), expected, f"{name}: evaluation-mode outputs")
    back = bridge.from_torch(twin)
    assert type(back) is type(ours) and not back.training
    for key, array in twin.state_dict().items():
        assert np.array_equal(back.state_dict()[key], array.numpy()), key
        assert back.state_dict()[key].dtype == array.numpy().dtype, key
    _close(back(*xs).numpy(), expected, f"{name}: back in tinygan")


def test_the_classifiers_noise_keeps_its_size_both_ways(bridge):
    model = semi_supervised.mlp_classifier(10, 16, (8,), 0.3, 0.5)
    twin = bridge.to_torch(model)
    back = bridge.from_torch(twin)
    noise = [m for m in twin.modules() if isinstance(m, bridge.TorchGaussianNoise)]
    noise_back = [m for m in back.modules() if isinstance(m, semi_supervised.GaussianNoise)]
    assert [m.std for m in noise] == [m.std for m in noise_back] == [0.3, 0.5]


def test_a_module_without_a_counterpart_is_named(torch, bridge):
    class Twice(nn.Module):
        def forward(self, x):
            return x * 2.0

    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), Twice()))
    with pytest.raises(bridge.NoCounterpartError, match=r"Twice at '1\.1' has no counterpart"):
        bridge.to_torch(model)

    class MySequential(nn.Sequential):  # may compute something else: refused too
        pass

    with pytest.raises(bridge.NoCounterpartError, match="MySequential at the top"):
        bridge.to_torch(MySequential(nn.ReLU()))
    dilated = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, dilation=2))
    with pytest.raises(bridge.NoCounterpartError, match=r"Conv2d at '0' has dilation=\(2, 2\)"):
        bridge.from_torch(dilated)
    with pytest.raises(bridge.NoCounterpartError, match="GRU at the top"):
        bridge.from_torch(torch.nn.GRU(2, 3))
    hooked = torch.nn.Linear(2, 3)
    hooked.register_forward_hook(lambda module, inputs, output: 2 * output)
    with pytest.raises(
        bridge.NoCounterpartError, match="Linear at the top of the model has forward hooks"
    ):
        bridge.from_torch(hooked)


def test_adam_carries_its_moments_and_step_counts_across(torch, bridge):
    rng = np.random.default_rng(1)
    model = nn.Sequential(
        nn.Sequential(nn.Linear(3, 8, rng=rng), nn.BatchNorm1d(8), nn.LeakyReLU(0.2)),
        nn.Linear(8, 1, rng=rng),
    ).double()
    x, w = rng.standard_normal((16, 3)), rng.standard_normal((16, 1))
    opt = optim.Adam(model.parameters(), lr=1e-2, betas=(0.5, 0.9), eps=1e-6, weight_decay=0.1)

    def loss_of(net, hidden_only: bool, lib):
        out = net[0](lib.tensor(x)) if hidden_only else net(lib.tensor(x))
        return (out**2).sum() if hidden_only else (out * lib.tensor(w)).sum()

    for _ in range(3):  # the last layer gets no gradient: it has no state yet
        opt.minimize(loss_of(model, True, tg))
    twin = bridge.to_torch(model)
    torch_opt = bridge.adam_to_torch(opt, model, twin)
    opt.minimize(loss_of(model, False, tg))  # steps 4 of the first layers, 1 of the last
    torch_opt.zero_grad()
    loss_of(twin, False, torch).backward()
    torch_opt.step()
    for key, array in model.state_dict().items():
        _close(array, twin.state_dict()[key].detach().numpy(), f"after one more step: {key}")
    assert [int(s["step"]) for s in torch_opt.state.values()] == [4, 4, 4, 4, 1, 1]

    # And back: tinygan's Adam continues PyTorch's.
    back = bridge.from_torch(twin)
    opt_back = bridge.adam_from_torch(torch_opt, twin, back)
    assert [s["step"] for s in opt_back.state] == [4, 4, 4, 4, 1, 1]
    opt_back.minimize(loss_of(back, False, tg))
    torch_opt.zero_grad()
    loss_of(twin, False, torch).backward()
    torch_opt.step()
    for key, array in back.state_dict().items():
        _close(array, twin.state_dict()[key].detach().numpy(), f"back in tinygan: {key}")


# ------------------------------------------------------------------ the run continues

# A grid and a checkpoint at step 20 (the last of the tinygan run) and at step 30.
TINY_RUN = [  # with an EMA, which the main demo keeps only when asked
    "--batch-size", "8", "--sample-every", "30", "--checkpoint-every", "20", "--no-download",
    "--ema", "0.995",
]  # fmt: skip


def _demo_main(name: str, *args: str) -> None:
    """``python demos/<name>.py args``, in this process (it has imported torch already)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(DEMOS))
        spec = importlib.util.spec_from_file_location(f"{name}_demo", DEMOS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        patch.setitem(sys.modules, spec.name, module)  # dataclasses look it up
        spec.loader.exec_module(module)
        patch.setattr(sys, "argv", [f"{name}.py", *args])
        module.main()


@pytest.fixture(scope="module")
def tinygan_run(tmp_path_factory) -> Path:
    """20 steps of the main demo (DCGAN-28 with its EMA, batch 8), checkpointed."""
    out = tmp_path_factory.mktemp("bridge") / "tinygan_run"
    _demo_main("mnist_lsgan", "--steps", "20", *TINY_RUN, "--out", str(out))
    return out


@pytest.fixture(scope="module")
def continued_run(torch, tinygan_run) -> Path:
    """That run continued in PyTorch, in one process, from step 20 to step 30."""
    out = tinygan_run.parent / "continued"
    shutil.copytree(tinygan_run, out)
    _demo_main("continue_in_pytorch", "--out", str(out), "--steps", "30")
    return out


def _loads_into_tinygan(checkpoint: Path, step: int) -> None:
    """The checkpoint loads into tinygan's objects, with finite losses; every step count is
    ``step``."""
    G, D = models.mnist_models("dcgan", d_batchnorm=False, seed=0)  # as the main demo
    nn.utils.spectral_norm_layers(D, np.random.default_rng(0))  # builds them
    opt_g, opt_d = optim.Adam(G.parameters()), optim.Adam(D.parameters())
    ema = EMA(G, 0.995)
    extras = load_checkpoint(
        checkpoint, generator=G, discriminator=D, opt_g=opt_g, opt_d=opt_d,
        generator_ema=ema.model,
    )  # fmt: skip
    assert extras["step"] == step and len(extras["history_d_loss"]) == step
    assert np.isfinite(extras["history_d_loss"]).all()
    assert np.isfinite(extras["history_g_loss"]).all()
    assert {s["step"] for s in opt_g.state + opt_d.state} == {step}


def _cancelled_by_batchnorm(model: nn.Sequential, group: str, opt: str) -> set[str]:
    """The checkpoint keys of each bias directly followed by BatchNorm, of its Adam state
    and of that BatchNorm's running mean.

    BatchNorm subtracts the batch mean, so such a bias has no effect and its gradient is 0
    in exact arithmetic; computed in float32 it is rounding noise (1e-9), and Adam, which
    divides by the gradient's own size, turns that noise into steps of about lr in random
    directions. These biases (and the running means, which follow them) therefore differ
    between any two implementations, and between them only: the outputs do not see them.
    """
    keys = set()
    names = [name for name, _ in model.named_parameters()]
    layers = list(model)
    for i, (layer, after) in enumerate(zip(layers, layers[1:])):
        if isinstance(after, (nn.BatchNorm1d, nn.BatchNorm2d)) and layer.bias is not None:
            index = names.index(f"{i}.bias")
            keys |= {f"{group}/{i}.bias", f"{group}/{i + 1}.running_mean"}
            keys |= {f"{opt}/state.{index}.exp_avg", f"{opt}/state.{index}.exp_avg_sq"}
    return keys


def test_ten_pytorch_steps_match_ten_tinygan_steps(tinygan_run, continued_run):
    """The same batches and noise, float32 on both sides: the checkpoints of step 30 agree
    to float32 rounding.

    Tolerance: each array to 1e-4 of its largest entry. The two libraries round
    differently (a convolution is im2col and a matrix product in tinygan, oneDNN in
    PyTorch; sums run in other orders), a few float32 ulps (6e-8) per op, and ten GAN
    steps feed the differences back through both networks and Adam's division by
    sqrt(v): we measured at most 7e-6 (Adam's first moments), 5e-7 for the weights. A
    state carried over wrongly fails by far: with every step count one short, some
    biases differ by a tenth of their size after the ten steps (we tried).
    """
    tinygan_only = tinygan_run.parent / "tinygan_only"
    shutil.copytree(tinygan_run, tinygan_only)
    _demo_main("mnist_lsgan", "--steps", "30", "--resume", *TINY_RUN, "--out", str(tinygan_only))
    ours, theirs = (read_checkpoint(p / "checkpoint.npz") for p in (tinygan_only, continued_run))
    assert set(ours) == set(theirs)
    G = models.mnist_models("dcgan", seed=0)[0]  # D: spectral norm, no BatchNorm
    skipped = _cancelled_by_batchnorm(G, "generator", "opt_g") | _cancelled_by_batchnorm(
        G, "generator_ema", "opt_g"
    )
    # The EMA's statistics are measured again before each grid: PyTorch's update_bn
    # restarts their count, tinygan's recompute_batchnorm adds to it; neither reads it.
    skipped |= {k for k in ours if k.startswith("generator_ema/") and "num_batches" in k}
    assert len(skipped) == 14
    for key in sorted(set(ours) - skipped - {"history_seconds"}):
        if ours[key].dtype.kind in "iu" or key == "step" or key.endswith(".step"):
            assert np.array_equal(ours[key], theirs[key]), key
        else:
            scale = max(float(np.abs(ours[key]).max()), 1e-30)
            diff = float(np.abs(ours[key] - theirs[key]).max())
            assert diff <= 1e-4 * scale, f"{key}: differs by {diff:.3g} (scale {scale:.3g})"
    for key in skipped:
        assert np.isfinite(theirs[key]).all(), key
    assert np.array_equal(ours["history_d_loss"][:20], theirs["history_d_loss"][:20])
    assert (continued_run / "samples" / "step_000030.png").exists()


def test_a_run_that_pytorch_continued_reads_as_a_tinygan_run(continued_run, load_demo):
    _loads_into_tinygan(continued_run / "checkpoint.npz", 30)
    _demo_main("mnist_lsgan", "--sample", "--out", str(continued_run))
    assert (continued_run / "samples.png").exists()
    evaluate = load_demo("evaluate")  # it reads the run's settings, then as --sample reads
    checkpoint = continued_run / "checkpoint.npz"
    settings = evaluate.run_settings(checkpoint, evaluate.EvaluateConfig(str(checkpoint)))
    assert settings == {"model": "dcgan", "z_dim": 100, "seed": 0}


def test_two_gloo_processes_continue_the_continued_run(continued_run):
    """A second call continues from the first's checkpoint, under torchrun, 2 processes."""
    out = continued_run.parent / "two_processes"
    shutil.copytree(continued_run, out)
    with socket.socket() as s:  # a free port on 127.0.0.1 for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--node-rank", "0",
        "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(port),
    ]  # fmt: skip
    result = subprocess.run(
        [*torchrun, str(DEMOS / "continue_in_pytorch.py"), "--out", str(out), "--steps", "32"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 process(es) on cpu (gloo), 4 images of each batch per process" in result.stdout
    assert "from step 30" in result.stdout and "done: 32 steps" in result.stdout
    _loads_into_tinygan(out / "checkpoint.npz", 32)


def test_a_mistake_ends_in_one_line(tmp_path, tinygan_run, torch, load_demo, capsys):
    demo = load_demo("continue_in_pytorch")
    names = ("none", "other", "damaged", "bad_json")
    no_checkpoint, other, damaged, bad_json = (tmp_path / name for name in names)
    for folder in (no_checkpoint, other, damaged, bad_json):
        folder.mkdir()
    (bad_json / "config.json").write_text('{"steps": 3,')  # cut short
    shutil.copy(tinygan_run / "checkpoint.npz", bad_json)
    shutil.copy(tinygan_run / "config.json", no_checkpoint)
    shutil.copy(tinygan_run / "config.json", damaged)
    (damaged / "checkpoint.npz").write_bytes(b"")
    (other / "config.json").write_text('{"steps": 3, "digit": -1}')  # mnist_cgan.py's
    (other / "checkpoint.npz").write_bytes(b"")
    expected = {
        tmp_path / "missing": "no such folder; give the --out folder of a tinygan run",
        no_checkpoint: "holds no checkpoint.npz yet, so there is nothing to continue from",
        other: "holds the run of another demo (its settings include digit); this script "
        "continues runs of demos/mnist_lsgan.py, mnist_gan.py and mnist_dcgan.py",
        damaged: "checkpoint.npz' is not a readable checkpoint: it is empty",
        bad_json: "config.json cannot be read as a run's settings",
    }
    for folder, message in expected.items():
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "argv", ["continue_in_pytorch.py", "--out", str(folder)])
            with pytest.raises(SystemExit) as stop:
                run_main(demo.main)
        shown = stop.value.code if isinstance(stop.value.code, str) else capsys.readouterr().err
        assert message in shown and len(shown.strip().splitlines()) == 1, shown


def test_the_chapters_pytorch_code_runs(torch, tmp_path, monkeypatch):
    """The chapter's ```py block: the docs test runs only its ```python blocks."""
    chapter = ROOT / "docs" / "10-outgrowing-tinygan.md"
    blocks = re.findall(r"^```py\n(.*?)^```$", chapter.read_text(encoding="utf-8"), re.M | re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], str(chapter), "exec"), {"__name__": "__docs__"})


def test_a_shared_loop_run_with_stabilisers_is_refused_and_an_older_one_is_read(
    tmp_path, torch, load_demo
):
    """A run of mnist_gan.py with --spectral-norm (or R1, DiffAugment) would continue
    without it in PyTorch: refused, naming the flag. A run folder of an older tinygan, whose
    config.json lacks those settings, had their defaults: read."""
    import dataclasses
    import json

    from tinygan.train import MnistConfig
    from tinygan.utils.run import RunError

    demo = load_demo("continue_in_pytorch")
    saved = dataclasses.asdict(MnistConfig())
    cases = [(None, None, True), ("spectral_norm", True, True), ("r1_gamma", 0.5, False),
             ("augment", "cutout", False)]  # fmt: skip
    for name, value, readable in cases:
        folder = tmp_path / str(name)
        folder.mkdir()
        settings = {k: v for k, v in saved.items() if k not in demo.STABILISERS}
        if name is not None:
            settings[name] = value
        (folder / "config.json").write_text(json.dumps(settings))
        (folder / "checkpoint.npz").write_bytes(b"")  # only looked for here
        if readable:
            assert demo.run_settings(folder, 5).steps == 5
        else:
            flag = "--" + name.replace("_", "-")
            with pytest.raises(RunError, match=f"trained with {flag}, which this script"):
                demo.run_settings(folder, 5)
