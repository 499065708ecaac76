"""The repository stands on its own: no tracked file points at something a clone lacks.

A user gets only what is tracked in git. So no tracked file may name a folder beside the
checkout (the parent directory's ``shared`` folder), design or style notes kept outside the
repository, or an issue by its number: what those hold belongs in CONTRIBUTING.md, a
chapter of docs/, or the code itself. The patterns are written as regular expressions, so
this file does not match itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

OUTSIDE_REFERENCES = {
    "a folder beside the checkout": re.compile(r"\.\./shared\b"),
    "design notes kept outside the repository": re.compile(r"\bDESIGN\.md\b"),
    "style notes kept outside the repository": re.compile(r"\bSTYLE\.md\b"),
    "an issue number": re.compile(r"\bissues?\s*(#\s*)?\d", re.IGNORECASE),
}


def tracked_files() -> list[Path]:
    """Every file git tracks in this checkout (skips the test outside a git checkout)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    result = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        pytest.skip(f"not a git checkout: {result.stderr.strip()}")
    return [ROOT / name for name in result.stdout.split("\0") if name]


def outside_references(text: str) -> list[tuple[int, str, str]]:
    """``(line number, what, the matched text)`` for each reference to outside the repo."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern in OUTSIDE_REFERENCES.items():
            found += [(number, what, m.group()) for m in pattern.finditer(line)]
    return found


# Each offending example is split in two strings joined by +, so that this file does not offend.
@pytest.mark.parametrize(
    "text, expected",
    [
        ("see ../" + "shared/datasets/mnist", ["a folder beside the checkout"]),
        ("as DESIGN" + ".md says", ["design notes kept outside the repository"]),
        ("the rule in STYLE" + ".md", ["style notes kept outside the repository"]),
        ("the targets of issue" + " 5", ["an issue number"]),
        ("Issue" + " 2's goal; fixed in issue" + " #12", ["an issue number", "an issue number"]),
        ("issues" + " 3 and 4", ["an issue number"]),
        ("a known issue with shared weights; see CONTRIBUTING.md", []),
    ],
)
def test_the_patterns_catch_what_they_should(text, expected):
    assert [what for _, what, _ in outside_references(text)] == expected


def test_no_tracked_file_refers_outside_the_repository():
    problems = []
    for path in tracked_files():
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # images, compressed data, weights
            continue
        for number, what, matched in outside_references(text):
            problems.append(f"{path.relative_to(ROOT)}:{number}: {what} ({matched!r})")
    assert not problems, (
        "these lines refer to something a clone of the repository lacks; point them at "
        "CONTRIBUTING.md, a chapter of docs/ or the code instead:\n" + "\n".join(problems)
    )
