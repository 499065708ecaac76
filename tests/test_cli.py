"""Flags: every setting is checked when the flags are parsed, before any data is loaded;
and a demo's mistakes end in one line (run_main, usage_errors)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tinygan.checkpoint import CheckpointError
from tinygan.data import DatasetError, DownloadError
from tinygan.train import MnistConfig
from tinygan.utils.cli import UsageError, parse_config, require_range, run_main, usage_errors
from tinygan.utils.fileio import refuse_to_replace
from tinygan.utils.run import RunError

ROOT = Path(__file__).resolve().parent.parent


def usage_error(cls, argv, capsys) -> str:
    """parse_config's message for ``argv``, which must be a usage error (exit status 2)."""
    with pytest.raises(SystemExit) as stop:
        parse_config(cls, argv)
    assert stop.value.code == 2
    return capsys.readouterr().err


@dataclass
class Interval:
    rate: float = 1.0
    share: float = 0.5
    count: int = 3

    def __post_init__(self) -> None:
        require_range(self, "rate", low=0, low_open=True)
        require_range(self, "share", low=0, high=1)
        require_range(self, "count", low=1, high=5, high_open=False)


@pytest.mark.parametrize(
    "field, value, interval",
    [
        ("rate", 0.0, "(0, inf)"), ("rate", -1e-3, "(0, inf)"), ("rate", math.inf, "(0, inf)"),
        ("rate", math.nan, "(0, inf)"), ("share", 1.0, "[0, 1)"), ("share", -0.1, "[0, 1)"),
        ("share", math.nan, "[0, 1)"), ("count", 0, "[1, 5]"), ("count", 6, "[1, 5]"),
    ],
)  # fmt: skip
def test_require_range_names_the_field_the_interval_and_the_value(field, value, interval):
    with pytest.raises(ValueError) as err:
        Interval(**{field: value})
    assert str(err.value) == f"{field} must be in {interval}, got {value!r}"


def test_require_range_accepts_the_ends_that_belong_to_the_interval():
    Interval(rate=1e-12, share=0.0, count=5)
    Interval(rate=1e300, share=0.999, count=1)


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--lr-g", "nan", "lr_g must be in (0, inf), got nan"),
        ("--lr-g", "inf", "lr_g must be in (0, inf), got inf"),
        ("--lr-d", "-0.0002", "lr_d must be in (0, inf), got -0.0002"),
        ("--lr-d", "0", "lr_d must be in (0, inf), got 0.0"),
        ("--beta1", "1", "beta1 must be in [0, 1), got 1.0"),
        ("--beta2", "-0.5", "beta2 must be in [0, 1), got -0.5"),
        ("--momentum", "1.5", "momentum must be in [0, 1), got 1.5"),
        ("--momentum", "nan", "momentum must be in [0, 1), got nan"),
        ("--gp-weight", "-10", "gp_weight must be in [0, inf), got -10.0"),
        ("--gp-weight", "nan", "gp_weight must be in [0, inf), got nan"),
        ("--seed", "-1", "seed must be in [0, inf), got -1"),
        ("--steps", "0", "steps must be in [1, inf), got 0"),
        ("--batch-size", "0", "batch_size must be in [1, inf), got 0"),
        ("--d-steps", "0", "d_steps must be in [1, inf), got 0"),
        ("--checkpoint-every", "-1", "checkpoint_every must be in [0, inf), got -1"),
        ("--log-every", "0", "log_every must be in [1, inf), got 0"),
        ("--sample-every", "-1", "sample_every must be in [0, inf), got -1"),
        ("--eval-every", "-5", "eval_every must be in [0, inf), got -5"),
    ],
)
def test_every_numeric_training_flag_is_checked_when_parsed(capsys, flag, value, message):
    assert message in usage_error(MnistConfig, [flag, value], capsys)


def test_every_n_steps_flags_accept_0_for_never():
    argv = ["--sample-every", "0", "--checkpoint-every", "0", "--eval-every", "0"]
    config = parse_config(MnistConfig, argv)
    assert config.sample_every == config.checkpoint_every == config.eval_every == 0


def test_an_explicit_data_root_must_be_an_existing_folder(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "folder"
    assert "data_root must be an existing folder" in usage_error(
        MnistConfig, ["--data-root", str(missing)], capsys
    )
    assert not (tmp_path / "no").exists()  # nothing created
    a_file = tmp_path / "file.gz"
    a_file.write_bytes(b"")
    assert str(a_file) in usage_error(MnistConfig, ["--data-root", str(a_file)], capsys)
    assert parse_config(MnistConfig, ["--data-root", str(tmp_path)]).data_root == str(tmp_path)


def test_resume_and_overwrite_exclude_each_other(capsys):
    message = usage_error(MnistConfig, ["--resume", "--overwrite"], capsys)
    assert "--resume and --overwrite exclude each other" in message


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "epochs must be in [1, inf), got 0"),
        (["--batch-size", "0"], "batch_size must be in [1, inf), got 0"),
        (["--train-count", "0"], "train_count must be in [64, 9999], got 0"),
        (["--train-count", "10000"], "train_count must be in [64, 9999], got 10000"),
        (["--lr", "nan"], "lr must be in (0, inf), got nan"),
        (["--shift", "-1"], "shift must be in [0, 28), got -1"),
        (["--seed", "-3"], "seed must be in [0, inf), got -3"),
    ],
)
def test_the_classifier_demo_checks_its_flags(monkeypatch, capsys, argv, message, load_demo):
    demo = load_demo("train_mnist_classifier")
    assert message in usage_error(demo.ClassifierConfig, argv, capsys)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--samples", "0"], "samples must be in [129, inf), got 0"),
        (["--samples", "128"], "samples must be in [129, inf), got 128"),
        (["--seed", "-1"], "seed must be in [0, inf), got -1"),
        (["--device", "tpu"], "tpu"),
    ],
)
def test_the_evaluation_demo_checks_its_flags(monkeypatch, capsys, argv, message, load_demo):
    demo = load_demo("evaluate")
    assert message in usage_error(demo.EvaluateConfig, argv, capsys)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lr", "nan"], "lr must be in (0, inf), got nan"),
        (["--seed", "-1"], "seed must be in [0, inf), got -1"),
        (["--input-noise", "-0.1"], "input_noise must be in [0, inf), got -0.1"),
        (["--hidden-noise", "inf"], "hidden_noise must be in [0, inf), got inf"),
        (["--log-every", "0"], "log_every must be in [1, inf), got 0"),
        (["--z-dim", "0"], "z_dim must be in [1, inf), got 0"),
        (["--data-root", "/no/such/folder"], "data_root must be an existing folder"),
    ],
)
def test_the_semi_supervised_demo_checks_its_flags(monkeypatch, capsys, argv, message, load_demo):
    demo = load_demo("mnist_semi_supervised")
    assert message in usage_error(demo.SemiSupervisedConfig, argv, capsys)


@pytest.mark.parametrize(
    "demo_name, earlier",
    [("train_mnist_classifier", "mnist_lenet.json"), ("mnist_semi_supervised", "results.json")],
)
def test_demos_that_write_at_the_end_keep_an_earlier_runs_results(
    tmp_path, monkeypatch, demo_name, earlier, load_demo
):
    demo = load_demo(demo_name)
    (tmp_path / earlier).write_text("{}")
    monkeypatch.setattr(sys, "argv", [demo_name, "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=f"{earlier}.*--overwrite") as stop:
        demo.main()  # refused before any data is loaded or step taken
    assert str(tmp_path.resolve()) in str(stop.value)
    assert (tmp_path / earlier).read_text() == "{}"
    refuse_to_replace(tmp_path, [earlier], overwrite=True)  # asked: nothing stops it


# --------------------------------------------------------------------------- one clean stop
def raising(error: BaseException):
    """A demo's ``main`` that fails with ``error``."""

    def main() -> None:
        raise error

    return main


def stop_of(main, monkeypatch, capsys, *argv: str) -> tuple[int | str | None, str]:
    """``run_main(main)`` with ``argv``: its exit status (or message) and its stderr."""
    monkeypatch.setattr(sys, "argv", ["demo.py", *argv])
    with pytest.raises(SystemExit) as stop:
        run_main(main)
    return stop.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "error, status",
    [
        (UsageError("lr must be positive"), 2),
        (DatasetError("the folder holds no image files"), 1),  # a ValueError, yet not usage
        (DownloadError("every mirror failed"), 1),
        (CheckpointError("checkpoint.npz is truncated"), 1),  # a RuntimeError, yet not usage
    ],
)
def test_run_main_ends_each_mistake_in_one_line_with_its_status(monkeypatch, capsys, error, status):
    code, err = stop_of(raising(error), monkeypatch, capsys)
    assert code == status
    assert err == f"demo.py: error: {error}\n"


def test_run_main_lets_a_run_error_and_an_interrupted_runs_status_through(monkeypatch, capsys):
    refusal = RunError("runs/x already holds a run: use --resume")
    code, err = stop_of(raising(refusal), monkeypatch, capsys)
    assert code == "runs/x already holds a run: use --resume" and err == ""  # printed on exit
    assert stop_of(raising(SystemExit(130)), monkeypatch, capsys) == (130, "")


@pytest.mark.parametrize(
    "bug",
    [ValueError("operands could not be broadcast"),
     FileNotFoundError(2, "No such file or directory", "tinygan/weights/mnist_lenet.npz")],
)  # fmt: skip
def test_run_main_keeps_the_traceback_of_a_bug(monkeypatch, bug):
    """A ValueError raised outside a usage_errors block (the training loop), or an OSError
    that no run turned into its one-line stop (a file of the library missing), is no mistake
    of the user's: it keeps its type and traceback."""
    monkeypatch.setattr(sys, "argv", ["demo.py"])
    with pytest.raises(type(bug)):
        run_main(raising(bug))


@pytest.mark.parametrize("error", [UsageError("bad lr"), DatasetError("no images")])
def test_debug_shows_the_traceback_of_a_mistake(monkeypatch, error):
    monkeypatch.setattr(sys, "argv", ["demo.py", "--debug"])
    with pytest.raises(type(error)):
        run_main(raising(error))


def test_debug_shows_where_a_run_error_was_raised(monkeypatch, capsys):
    code, err = stop_of(raising(RunError("diverged")), monkeypatch, capsys, "--debug")
    assert code == "diverged" and "Traceback" in err and "RunError: diverged" in err


def test_usage_errors_turns_a_refused_setting_into_a_usage_error():
    for refusal in (ValueError("Adam: lr must be >= 0"), TypeError("z_dim must be an int"),
                    RuntimeError("cuda requested, but no GPU is usable")):  # fmt: skip
        with pytest.raises(UsageError, match=str(refusal)) as info:
            with usage_errors():
                raise refusal
        assert info.value.__cause__ is refusal


@pytest.mark.parametrize(
    "error",
    [DatasetError("no digits"), CheckpointError("truncated"), OSError("disk full"),
     RunError("already holds a run"), KeyError("a bug")],
)  # fmt: skip
def test_usage_errors_lets_the_other_errors_through_unchanged(error):
    with pytest.raises(type(error)) as info:
        with usage_errors():
            raise error
    assert info.value is error


def test_every_demo_parser_takes_debug_without_it_becoming_a_setting():
    config = parse_config(MnistConfig, ["--debug", "--steps", "3"])
    assert config.steps == 3 and not hasattr(config, "debug")
