"""Command-line flags from a dataclass, and the one way a demo stops on a mistake.

The demos describe their settings once, as a dataclass with defaults and a docstring
``Attributes:`` section; this module turns it into an argparse parser, so a flag, its
default and its help text can never disagree with the code. A bad value is a usage error
(exit status 2) before anything is loaded or written: found either by the dataclass's
``__post_init__`` (with the ``require_*`` helpers below), or by the constructors the demo
builds its objects with, inside a :func:`usage_errors` block.

A user's mistake ends in one plain line on stderr, not a traceback: each demo runs its
``main`` through :func:`run_main`, which turns tinygan's own errors into that line and an
exit status, 2 for a setting (:class:`UsageError`), 1 for everything else the user can fix
(the data, a checkpoint, the run's folder, the disk). Any other exception is a bug in
tinygan and keeps its traceback; ``--debug``, a flag of every demo, shows the traceback
of every error.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tinygan.checkpoint import CheckpointError
from tinygan.utils.idx import DatasetError

T = TypeVar("T")

# The mistakes that are not a setting, each with a message that names its fix: the data,
# a checkpoint. Exit status 1. (The disk's are the run's: Run turns a failed write into a
# RunError saying what is intact; any other OSError is a bug and keeps its traceback.)
OTHER_MISTAKES = (DatasetError, CheckpointError)


class UsageError(ValueError):
    """A setting the program cannot run with; :func:`run_main` ends it with status 2.

    A ValueError, so that code catching the library's ValueErrors still catches it.
    """


def _field_help(cls: type) -> dict[str, str]:
    """``name: text`` lines of the class docstring's Attributes section (and bases')."""
    helps: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = klass.__doc__ or ""
        for match in re.finditer(r"^\s{8}([\w, ]+): (.+(?:\n\s{12}.+)*)", doc, re.MULTILINE):
            text = " ".join(match.group(2).split())
            for name in match.group(1).split(","):
                helps[name.strip()] = text
    return helps


def parse_config(cls: type[T], argv: Sequence[str] | None = None, **defaults: Any) -> T:
    """Build ``cls`` (a dataclass) from command-line flags.

    Args:
        cls: the dataclass; a bool field becomes a ``--flag`` / ``--no-flag`` pair.
        argv: the arguments (default: ``sys.argv[1:]``).
        **defaults: defaults that override the dataclass's own (a demo's choices).

    Returns:
        An instance of ``cls``. Invalid values exit with argparse's usage message, and the
        dataclass's own checks (``__post_init__``) are reported the same way. The parser
        also takes ``--debug``, which :func:`run_main` reads (it is no setting of ``cls``).
    """
    parser = argparse.ArgumentParser(
        description=(cls.__doc__ or "").strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--debug", action="store_true", help="on an error, show Python's traceback, not one line"
    )
    helps = _field_help(cls)
    for field in dataclasses.fields(cls):
        default = defaults.get(field.name, field.default)
        flag = "--" + field.name.replace("_", "-")
        help_text = helps.get(field.name, "")
        if isinstance(default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        else:
            parser.add_argument(flag, type=type(default), default=default, help=help_text)
    args = vars(parser.parse_args(argv))
    del args["debug"]
    try:
        return cls(**args)
    except (ValueError, TypeError, RuntimeError) as err:
        parser.error(str(err))


@contextmanager
def usage_errors() -> Iterator[None]:
    """Mark the block where settings become objects: a ValueError, TypeError or RuntimeError
    raised in it (a constructor refusing a setting, "cuda" without a GPU, a batch larger
    than the data) is raised again as a :class:`UsageError`, with the same message.

    The errors of :data:`OTHER_MISTAKES` (a data folder without the files, a damaged
    checkpoint) pass unchanged: they are no setting. Only the setup belongs in the block:
    an error of the training loop itself is a bug, and keeps its type and traceback.

    Example:
        >>> with usage_errors():  # a bad --lr-g stops here, naming Adam's check
        ...     opt_g = Adam(G.parameters(), lr=config.lr_g)
    """
    try:
        yield
    except (UsageError, *OTHER_MISTAKES):
        raise
    except (ValueError, TypeError, RuntimeError) as err:
        raise UsageError(str(err)) from err


def run_main(main: Callable[[], None]) -> None:
    """Run a demo's ``main()``: a mistake the user can fix ends it in one line on stderr.

    ``prog: error: message`` and exit status 2 for a :class:`UsageError`, 1 for one of
    :data:`OTHER_MISTAKES`; a ``SystemExit`` (a run folder's ``RunError``, which prints
    its own message with status 1, or the status of an interrupted run) ends the program
    as it is. Any other exception is a bug and shows its traceback. With ``--debug`` on
    the command line every error shows its traceback, the one-line ones included.

    Example:
        >>> if __name__ == "__main__":
        ...     run_main(main)
    """
    debug = "--debug" in sys.argv[1:]
    try:
        main()
    except SystemExit as stop:
        if debug and isinstance(stop.code, str):  # a message: where it was raised
            traceback.print_exc()
        raise
    except (UsageError, *OTHER_MISTAKES) as err:
        if debug:
            raise
        prog = Path(sys.argv[0]).name or "tinygan"
        print(f"{prog}: error: {err}", file=sys.stderr)
        raise SystemExit(2 if isinstance(err, UsageError) else 1) from None


def require_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise ValueError unless ``value`` is one of ``choices`` (for ``__post_init__``)."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def require_range(
    config: Any,
    *names: str,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = True,
) -> None:
    """Raise ValueError unless each named field of ``config`` lies in the interval.

    The interval runs from ``low`` to ``high``, each end included unless it is open; the
    default, [low, inf), leaves out infinity. NaN lies in no interval (every comparison
    with it is False), so ``--lr nan`` is refused like ``--lr -1``.

    Example:
        >>> require_range(config, "beta1", "beta2", low=0, high=1)  # [0, 1)
        >>> require_range(config, "lr", low=0, low_open=True)  # (0, inf): finite, positive
    """
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    for name in names:
        value = getattr(config, name)
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):
            raise ValueError(f"{name} must be in {interval}, got {value!r}")


def require_positive(config: Any, *names: str) -> None:
    """Raise ValueError unless each named field of ``config`` is at least 1 (a count)."""
    require_range(config, *names, low=1)


def require_folder(config: Any, *names: str) -> None:
    """Raise ValueError unless each named field of ``config`` is empty or an existing folder."""
    for name in names:
        value = getattr(config, name)
        if value and not Path(value).is_dir():
            raise ValueError(f"{name} must be an existing folder (or not given), got {value!r}")
