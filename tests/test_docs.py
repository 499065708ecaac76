"""The guided tour (docs/), the README, CONTRIBUTING.md and CHANGELOG.md cannot rot.

* Every ```python block of these files runs: the blocks of one file in order, in one
  namespace (so a later block may use what an earlier one defined), in a temporary
  working directory. A failure names the file, the block and the line of the Markdown file.
* Every relative link of the tour, the contributor's guide and the changelog (and the
  README's links into docs/) points at a file that exists, and a link whose text is a
  name in backticks, such as [`sum_to`](../tinygan/ops.py), names a function, class or
  module-level variable defined in that file.
* Every chapter ends with an exercise whose `python -m pytest ...` command selects tests,
  and every such command in these files selects at least one test.
* The version in pyproject.toml is ``tinygan.__version__`` and has a CHANGELOG.md section.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

import tinygan

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHAPTERS = sorted(DOCS.glob("[0-9][0-9]-*.md"))
GUIDES = ("README.md", "CONTRIBUTING.md", "CHANGELOG.md")
DOC_FILES = sorted(DOCS.glob("*.md")) + [ROOT / name for name in GUIDES]

LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)\)")
PYTEST_COMMAND = re.compile(r"python -m pytest [^`\n]*")
NAME_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``(line of the block's first code line, code)`` for every ```python block, in order."""
    blocks: list[tuple[int, str]] = []
    code: list[str] | None = None
    start = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if code is None:
            if line.strip() == "```python":
                code, start = [], number + 1
        elif line.strip() == "```":
            blocks.append((start, "\n".join(code)))
            code = None
        else:
            code.append(line)
    assert code is None, f"{_rel(path)}: the ```python block at line {start - 1} is not closed"
    return blocks


def test_the_tour_exists_and_every_chapter_has_examples():
    assert (DOCS / "README.md").exists()
    assert len(CHAPTERS) >= 8, [p.name for p in CHAPTERS]
    for chapter in CHAPTERS:
        assert python_blocks(chapter), f"{_rel(chapter)} has no ```python example"


@pytest.mark.parametrize("path", DOC_FILES, ids=_rel)
def test_code_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    namespace: dict = {"__name__": "__docs__"}
    for i, (line, code) in enumerate(python_blocks(path), 1):
        # Blank lines in front, so tracebacks give the line number in the Markdown file.
        compiled = compile("\n" * (line - 1) + code, _rel(path), "exec")
        try:
            exec(compiled, namespace)
        except Exception:
            pytest.fail(
                f"{_rel(path)}: python block {i} (starting at line {line}) failed:\n"
                + traceback.format_exc(),
                pytrace=False,
            )


def _defined_names(source_file: Path) -> set[str]:
    """Functions and classes (at any depth) and module-level variables of a Python file."""
    tree = ast.parse(source_file.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


@pytest.mark.parametrize("path", DOC_FILES, ids=_rel)
def test_links_point_at_existing_files_and_names(path):
    text = path.read_text(encoding="utf-8")
    problems = []
    for match in LINK.finditer(text):
        label, target = match.groups()
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        if path.name == "README.md" and path.parent == ROOT and not target.startswith("docs"):
            continue  # the README's other links are the README's business
        file = (path.parent / target.split("#")[0]).resolve()
        line = text.count("\n", 0, match.start()) + 1
        if not file.exists():
            problems.append(f"line {line}: {target} does not exist")
            continue
        name = label.strip()
        if file.suffix == ".py" and name.startswith("`") and name.endswith("`"):
            name = re.sub(r"\(.*\)$", "", name.strip("`"))
            if NAME_PATH.fullmatch(name) and not name.endswith("py"):
                missing = [part for part in name.split(".") if part not in _defined_names(file)]
                if missing:
                    problems.append(f"line {line}: {target} defines no {', '.join(missing)}")
    assert not problems, f"{_rel(path)}:\n" + "\n".join(problems)


def test_every_chapter_ends_with_an_exercise_and_a_command():
    for chapter in CHAPTERS:
        text = chapter.read_text(encoding="utf-8")
        assert "## Exercise" in text, f"{_rel(chapter)} has no '## Exercise' section"
        exercise = text.split("## Exercise", 1)[1]
        assert PYTEST_COMMAND.search(exercise), f"{_rel(chapter)}: the exercise cites no command"


_COLLECT = """
import json, sys
import pytest

class Count:
    n = 0
    def pytest_collection_finish(self, session):
        self.n = len(session.items)

counts = []
for args in json.loads(sys.argv[1]):
    counter = Count()
    pytest.main([*args, "--collect-only", "-qq", "-p", "no:cacheprovider"], plugins=[counter])
    counts.append(counter.n)
print(json.dumps(counts))
"""


def test_every_cited_pytest_command_selects_tests():
    commands: dict[tuple[str, ...], str] = {}  # pytest's arguments -> the command as cited
    for path in DOC_FILES:
        for command in PYTEST_COMMAND.findall(path.read_text(encoding="utf-8")):
            arguments = tuple(shlex.split(command, comments=True)[3:])
            if any(a.startswith("tests/") for a in arguments):  # not the whole suite
                commands.setdefault(arguments, command.strip())
    assert len(commands) >= len(CHAPTERS)
    # One interpreter collects for every command (imports once), without third-party
    # plugins (only collection is asked for): a few seconds in all.
    result = subprocess.run(
        [sys.executable, "-c", _COLLECT, json.dumps(list(commands))],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    empty = [command for command, n in zip(commands.values(), counts) if n == 0]
    assert not empty, f"these commands select no test: {empty}"


def test_the_changelog_describes_the_current_version():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    version = re.search(r'^version = "([^"]+)"$', pyproject, re.MULTILINE).group(1)
    assert tinygan.__version__ == version, "pyproject.toml and tinygan.__version__ differ"
    headings = re.findall(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert version in headings, f"CHANGELOG.md has no section for version {version}"
