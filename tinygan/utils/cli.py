"""Command-line flags from a dataclass: every field becomes ``--field-name``.

The demos describe their settings once, as a dataclass with defaults and a docstring
``Attributes:`` section; this module turns it into an argparse parser, so a flag, its
default and its help text can never disagree with the code. A bad value is a usage error
(one line, exit status 2) before anything is loaded or written: found either by the
dataclass's ``__post_init__`` (with the ``require_*`` helpers below), or by the
constructors the demo builds its objects with, inside a :func:`usage_errors` block.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


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
        dataclass's own checks (``__post_init__``) are reported the same way.
    """
    parser = argparse.ArgumentParser(
        description=(cls.__doc__ or "").strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
    args = parser.parse_args(argv)
    try:
        return cls(**vars(args))
    except (ValueError, TypeError, RuntimeError) as err:
        parser.error(str(err))


@contextmanager
def usage_errors() -> Iterator[None]:
    """A ValueError, TypeError or RuntimeError raised in the block (a constructor refusing a
    setting, "cuda" without a GPU) ends the program as a usage error: one line
    ``prog: error: message`` on stderr, exit status 2.

    Example:
        >>> with usage_errors():  # a bad --lr-g stops here, naming Adam's check
        ...     opt_g = Adam(G.parameters(), lr=config.lr_g)
    """
    try:
        yield
    except (ValueError, TypeError, RuntimeError) as err:
        prog = Path(sys.argv[0]).name or "tinygan"
        print(f"{prog}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


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
