"""The lesson path stays small, and README's table of it tells the truth.

The lesson path is what a learner reads to follow the main demo down to the arrays: the
demo and every file its loop reaches. README.md lists it with each file's line count
(``wc -l``, docstrings included); this test fails when a count in the table is stale, when
the table and the path differ, or when the path passes 2,500 lines.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import tinygan as tg
from tinygan import losses, models, nn, optim

ROOT = Path(__file__).resolve().parent.parent
LESSON_PATH = (
    "demos/mnist_lsgan.py",
    "tinygan/tensor.py",
    "tinygan/autograd.py",
    "tinygan/ops.py",
    "tinygan/conv.py",
    "tinygan/functional.py",
    "tinygan/nn.py",
    "tinygan/optim.py",
    "tinygan/losses.py",
)
LIMIT = 2500
ROW = re.compile(r"^\| \[`([^`]+)`\]\(([^)]+)\) \| ([\d,]+) \|", re.MULTILINE)


def lines(path: str) -> int:
    return len((ROOT / path).read_text(encoding="utf-8").splitlines())


def test_the_lesson_path_is_at_most_2500_lines():
    total = sum(lines(p) for p in LESSON_PATH)
    assert total <= LIMIT, f"the lesson path is {total} lines, over {LIMIT}: move extras off it"


def test_readme_lists_the_lesson_path_with_its_line_counts():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**The lesson path**") : readme.index("Off the path")]
    rows = {link: int(count.replace(",", "")) for _, link, count in ROW.findall(section)}
    assert list(rows) == list(LESSON_PATH)
    for path, count in rows.items():
        assert count == lines(path), f"README says {path} has {count} lines, it has {lines(path)}"
    total = sum(rows.values())
    assert f"It is {total:,} lines" in section


def test_the_main_demo_reaches_no_code_off_the_path_while_it_trains():
    """Every op and layer of a DCGAN-28 step as the main demo takes it, with --reference,
    comes from a file of the path (the extras and the fast paths are off it)."""
    path_modules = {"tinygan." + Path(p).stem for p in LESSON_PATH if p.startswith("tinygan/")}
    G, D = models.mnist_models("dcgan", z_dim=8, d_batchnorm=False, seed=0)  # as the demo
    nn.utils.spectral_norm_layers(D, np.random.default_rng(0))  # builds its D
    opt_g, opt_d = optim.Adam(G.parameters()), optim.Adam(D.parameters())
    seen: set[str] = set()

    def record(t):
        stack = [t]
        while stack:
            node = stack.pop()
            if node._ctx is not None:
                seen.add(type(node._ctx).__module__)
                stack.extend(node._ctx.inputs or ())

    z, real = tg.randn(4, 8), tg.rand(4, 1, 28, 28) * 2 - 1
    with tg.use_fast_paths(False):
        fake = G(z)
        real_scores, fake_scores = D(real), D(fake.detach())
        d_loss = losses.lsgan_d_loss(real_scores, fake_scores)
        record(d_loss)
        opt_d.minimize(d_loss)
        g_loss = losses.lsgan_g_loss(D(fake))  # through the updated D, as the demo does
        record(g_loss)
        opt_g.minimize(g_loss)
    seen |= {type(m).__module__ for net in (G, D) for m in net.modules()}
    assert seen <= path_modules, seen - path_modules
