"""Checkpoints: round trips that resume training exactly, pickle-free .npz files, atomic
writes, and clear errors for missing, extra or mis-shaped keys and for broken files."""

import os
import pickle
import zipfile

import numpy as np
import pytest

import tinygan as tg
from tinygan import models, nn, optim
from tinygan.checkpoint import CheckpointError, read_checkpoint


def _model(seed, hidden=8, bias=True):
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Linear(3, hidden, bias=bias, rng=rng),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, 1, rng=rng),
    )


X = tg.tensor(np.random.default_rng(0).standard_normal((16, 3)), dtype="float32")


def _train(model, opt, steps):
    for _ in range(steps):
        loss = (model(X) * model(X)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_round_trip_resumes_training_exactly(tmp_path):
    model = _model(seed=1)
    opt = optim.Adam(model.parameters(), lr=0.01, betas=(0.5, 0.999))
    _train(model, opt, 3)
    path = tmp_path / "ckpt.npz"
    tg.save_checkpoint(path, model=model, optimizer=opt, step=3, best_loss=0.25)
    _train(model, opt, 2)  # the reference continuation

    model2 = _model(seed=2)
    opt2 = optim.Adam(model2.parameters(), lr=0.5)
    extras = tg.load_checkpoint(path, model=model2, optimizer=opt2)
    assert extras == {"step": 3, "best_loss": 0.25}
    assert isinstance(extras["step"], int)
    _train(model2, opt2, 2)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, model2.state_dict()[key], err_msg=key)


def test_file_is_a_plain_npz_without_pickle_and_no_temp_file_is_left(tmp_path):
    model = _model(seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train(model, opt, 1)
    path = tmp_path / "ckpt.npz"
    tg.save_checkpoint(path, model=model, optimizer=opt)
    with np.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
        np.testing.assert_array_equal(archive["model/0.weight"], model[0].weight.numpy())
    assert "model/1.num_batches_tracked" in keys and "optimizer/state.0.momentum_buffer" in keys
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    tg.save_checkpoint(path, model=_model(seed=0))
    original = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        tg.save_checkpoint(path, model=_model(seed=1))
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_missing_extra_and_mis_shaped_keys_name_the_key(tmp_path):
    path = tmp_path / "ckpt.npz"
    tg.save_checkpoint(path, model=_model(seed=0))
    with pytest.raises(
        CheckpointError, match=r"keys of another shape, .*'0.weight' \(8, 3\) -> \(5, 3\)"
    ):
        tg.load_checkpoint(path, model=_model(seed=0, hidden=5))
    with pytest.raises(CheckpointError, match=r"1 key the model does not have \('0.bias' \(8,\)\)"):
        tg.load_checkpoint(path, model=_model(seed=0, bias=False))
    no_bias = tmp_path / "no_bias.npz"
    tg.save_checkpoint(no_bias, model=_model(seed=0, bias=False))
    with pytest.raises(
        CheckpointError, match=r"1 key of the model missing from the file \('0.bias' \(8,\)\)"
    ):
        tg.load_checkpoint(no_bias, model=_model(seed=0))
    with pytest.raises(CheckpointError, match=r"no entry 'optimizer'; it has \['model'\]"):
        tg.load_checkpoint(path, optimizer=optim.SGD(_model(0).parameters(), lr=0.1))


def test_a_checkpoint_of_another_model_is_refused_in_one_short_line(tmp_path):
    """Tens of keys differ: the message counts them and shows three of each, not all."""
    path = tmp_path / "dcgan.npz"
    generator, _ = models.mnist_models("dcgan", 100)
    tg.save_checkpoint(path, generator=generator)
    mlp, _ = models.mnist_models("mlp", 100)
    with pytest.raises(CheckpointError) as refused:
        tg.load_checkpoint(path, generator=mlp)
    message = str(refused.value)
    assert "\n" not in message and len(message) < 600, message
    missing = len([k for k in mlp.state_dict() if k not in generator.state_dict()])
    unexpected = len([k for k in generator.state_dict() if k not in mlp.state_dict()])
    assert missing + unexpected > 6  # more than the examples shown
    assert f"{missing} keys of the model missing from the file" in message
    assert f"{unexpected} keys the model does not have" in message
    assert message.count("', ") <= 3 * 3 and "..." in message


@pytest.mark.parametrize("damage", ["truncated", "garbage", "flipped bytes"])
def test_broken_files_give_a_clear_error(tmp_path, damage):
    path = tmp_path / "ckpt.npz"
    tg.save_checkpoint(path, model=_model(seed=0))
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"this is not a zip archive" * 10)
    else:  # inside the first array's data: the zip's CRC check catches it
        start = data.index(b"\x93NUMPY") + 128
        data[start : start + 8] = bytes(8)
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        tg.load_checkpoint(path, model=_model(seed=0))


def _write_foreign_file(path, kind):
    """A file at ``path`` that is no tinygan checkpoint, as users meet them."""
    if kind == "pytorch":  # torch.save's zip layout: a pickle beside the tensors' bytes
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("model/data.pkl", pickle.dumps({"0.weight": "tensor"}))
            archive.writestr("model/data/0", bytes(16))
            archive.writestr("model/version", "3\n")
    elif kind == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"0.weight": np.zeros(3)}, protocol=4))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        whole = path.with_name("whole.npz")
        tg.save(_model(seed=0).state_dict(), whole)
        path.write_bytes(whole.read_bytes()[:300])
    elif kind == "zip of text":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "not arrays")
    else:
        path.mkdir()


@pytest.mark.parametrize(
    "kind, what",
    [("pytorch", "a PyTorch checkpoint"), ("npy", "a single NumPy array (.npy"),
     ("pickle", "a Python pickle"), ("empty", "empty (0 bytes)"),
     ("truncated", "cut short or damaged"), ("zip of text", "zip archive but no .npz"),
     ("folder", "it is a folder")],
)  # fmt: skip
def test_load_refuses_every_file_that_is_no_tinygan_checkpoint_and_says_what_it_is(
    tmp_path, kind, what
):
    """Never raw bytes (NumPy returns a zip member that is not .npy as bytes), never a
    TypeError from inside NumPy: a CheckpointError that names what the file is."""
    path = tmp_path / "weights.pt"
    _write_foreign_file(path, kind)
    with pytest.raises(CheckpointError) as refused:
        tg.load(path)
    message = str(refused.value)
    assert message.startswith(f"{str(path)!r} is not a readable checkpoint: it ")
    assert what in message and "\n" not in message


def test_pickled_object_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, payload=np.array([{"a": 1}], dtype=object))  # needs pickle to read
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(path)


def test_missing_file_and_bad_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        tg.load_checkpoint(tmp_path / "nope.npz", model=_model(0))
    with pytest.raises(ValueError, match="contain no '/'"):
        tg.save_checkpoint(tmp_path / "x.npz", **{"a/b": _model(0)})


def test_a_checkpoint_that_cannot_be_read_is_not_called_damaged(tmp_path, monkeypatch):
    """A file the user may not read (root reads any file, so the refusal is staged) is
    reported as unreadable, not as corrupt."""
    import tinygan.checkpoint

    path = tmp_path / "checkpoint.npz"
    tg.save({"w": np.ones(2, dtype=np.float32)}, path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(tinygan.checkpoint, "open", refuse, raising=False)
    with pytest.raises(CheckpointError, match="could not be read: Permission denied"):
        tg.load(path)
