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
* The README's demo table gives each demo's real default steps, batch size and learning
  rates, and its table of flags names only flags a demo's ``--help`` lists (and, in its
  last column, only flags it does not), both read from each demo's own ``--help``.
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
    monkeypatch.setenv("TINYGAN_DOCS_TEST", "1")  # the lab (chapter 11) trains 20 steps
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


# ------------------------------------------------------------------ the README's demo tables
README = ROOT / "README.md"
FLAG = re.compile(r"`(--[a-z][a-z0-9-]*)")
_HELP = """
import contextlib, io, json, runpy, sys

texts = {}
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        runpy.run_path(path, run_name="__main__")
    texts[path] = out.getvalue()
print(json.dumps(texts))
"""


def _table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of each row of the Markdown table whose header line is ``header``."""
    assert header in text, f"README.md has no table {header!r}"
    table = text.split(header, 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in table]


def _help_defaults(text: str) -> dict[str, str]:
    """``{flag: default}`` for every option of an argparse ``--help`` text ("" for none)."""
    found = {}
    for entry in re.split(r"\n(?=  -)", text.split("\noptions:\n", 1)[1]):
        entry = " ".join(entry.split())
        head = re.match(r"(?:-\w, )?(--[\w-]+)(?: [A-Z_]+)?(?:, (--[\w-]+))?", entry)
        assert head, f"unexpected --help entry: {entry!r}"
        start = entry.rfind("(default:")
        default = entry[start + len("(default:") : -1].strip() if start >= 0 else ""
        found.update({flag: default for flag in head.groups() if flag})
    return found


@pytest.fixture(scope="module")
def demo_flags() -> dict[str, dict[str, str]]:
    """``{"demos/NAME.py": {flag: default}}`` from the ``--help`` of every demo the README's
    demo table or table of flags names; one interpreter runs them all (imports once)."""
    text = README.read_text(encoding="utf-8")
    named = set(re.findall(r"^\| `python (demos/\w+\.py)", text, re.MULTILINE))
    for row in _table_rows(text, "| demo | also takes | does not take |"):
        named.update(f"demos/{name}" for name in re.findall(r"`(\w+\.py)`", row[0]))
    scripts = sorted(named)
    result = subprocess.run(
        [sys.executable, "-c", _HELP, *scripts], cwd=ROOT, capture_output=True, text=True,
        timeout=120, env={**os.environ, "COLUMNS": "100"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    texts = json.loads(result.stdout.strip().splitlines()[-1])
    return {script: _help_defaults(texts[script]) for script in scripts}


# How the README's demo table gives learning rates: each group of the pattern is the
# default of the flags beside it ("Adam 1e-3 for G and D": --lr-g and --lr-d are 1e-3).
_RATES = {
    r"Adam ([0-9.e-]+) for G, ([0-9.e-]+) for (?:D|the critic)\b": (["--lr-g"], ["--lr-d"]),
    r"Adam ([0-9.e-]+) for G and D\b": (["--lr-g", "--lr-d"],),
    r"Adam ([0-9.e-]+) for every network\b": (["--lr"],),
}


def test_the_readme_demo_table_gives_each_demos_defaults(demo_flags):
    rows = _table_rows(
        README.read_text(encoding="utf-8"), "| command | model and loss | default run |"
    )
    problems, checked = [], 0
    for command, model, default_run in rows:
        script = re.match(r"`python (demos/\w+\.py)", command)[1]
        claims: dict[str, float] = {}
        run = re.fullmatch(r"([\d,]+) steps, batch (\d+)", default_run)
        if run:
            claims |= {"--steps": int(run[1].replace(",", "")), "--batch-size": int(run[2])}
        else:
            assert "steps" not in default_run, f"{script}: cannot read {default_run!r}"
        matches = [(re.search(p, model), flags) for p, flags in _RATES.items()]
        matches = [(match, flags) for match, flags in matches if match]
        assert matches or "Adam" not in model, f"{script}: cannot read the rates in {model!r}"
        for match, flags in matches:
            for value, names in zip(match.groups(), flags):
                claims |= {name: float(value) for name in names}
        defaults = demo_flags[script]
        for flag, claimed in claims.items():
            checked += 1
            if flag not in defaults or float(defaults[flag]) != claimed:
                said = defaults.get(flag, "no such flag")
                problems.append(f"{script}: README says {flag} {claimed:g}, --help says {said}")
    assert checked >= 15 and not problems, "\n".join(problems)


def test_the_readme_names_the_flags_each_mnist_demo_takes(demo_flags):
    text = README.read_text(encoding="utf-8")
    common = FLAG.findall(re.search(r"Every MNIST demo takes (.*?);", text, re.DOTALL)[1])
    rows = _table_rows(text, "| demo | also takes | does not take |")
    problems, covered = [], set()
    for demos, takes, lacks in rows:
        for name in re.findall(r"`(\w+\.py)`", demos):
            covered.add(name)
            flags = demo_flags[f"demos/{name}"]
            problems += [
                f"{name} has no {f}" for f in common + FLAG.findall(takes) if f not in flags
            ]
            problems += [f"{name} does have {f}" for f in FLAG.findall(lacks) if f in flags]
    mnist_demos = {path.name for path in (ROOT / "demos").glob("mnist_*.py")}
    assert common and covered == mnist_demos, (common, covered ^ mnist_demos)
    assert not problems, "\n".join(problems)
