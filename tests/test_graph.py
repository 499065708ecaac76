"""tinygan.utils.graph.to_dot: the DOT text of a tensor's graph, checked line by line."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter

import numpy as np
import pytest

import tinygan as tg
from tinygan.utils.graph import to_dot

NODE = re.compile(r'^  (\w+) \[label="((?:[^"\\]|\\.)*)", (.*)\];$')
EDGE = re.compile(r"^  (\w+) -> (\w+);$")


def parse(source: str) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str]]]:
    """``({node id: (label, other attributes)}, [(tail, head), ...])``; fails on other lines."""
    lines = source.splitlines()
    assert lines[0] == "digraph tinygan {" and lines[-1] == "}", source
    assert source.count("{") == source.count("}") == 1
    nodes, edges = {}, []
    for line in lines[3:-1]:
        if node := NODE.match(line):
            assert node[1] not in nodes, f"node {node[1]} declared twice"
            label = re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], node[2])
            nodes[node[1]] = (label, node[3])
        else:
            edge = EDGE.match(line)
            assert edge, f"not a node or an edge: {line!r}"
            edges.append((edge[1], edge[2]))
    assert {end for edge in edges for end in edge} <= set(nodes), "an edge to no node"
    return nodes, edges


def op_labels(nodes: dict[str, tuple[str, str]]) -> Counter:
    return Counter(label for node, (label, _) in nodes.items() if node.startswith("op"))


def label_of(nodes: dict[str, tuple[str, str]], name: str) -> tuple[str, str]:
    (found,) = [node for node in nodes.values() if node[0].split("\n")[0] == name]
    return found


@pytest.fixture
def expression():
    """y = tanh(x * w + b).sum(), with x and w requiring grad and b a constant."""
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    w = tg.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = tg.tensor(rng.standard_normal(3))
    return x, w, b, (x * w + b).tanh().sum()


def test_the_graph_of_an_expression(expression):
    x, w, b, y = expression
    nodes, edges = parse(to_dot(y, names={"x": x, "w": w, "bias": b}))
    assert op_labels(nodes) == Counter({"Mul": 1, "Add": 1, "Tanh": 1, "Sum": 1})
    assert len(nodes) == 4 + 7  # 4 ops; x, w, b, x*w, x*w+b, tanh(.), y
    assert len(edges) == 6 + 4  # 2+2+1+1 inputs, one output edge per op
    assert nodes["t0"] == ("() float64", 'shape=box, style="filled", fillcolor="#cfe2f3"')
    for name in ("x", "w"):  # leaves that require grad: filled, with a double border
        label, style = label_of(nodes, name)
        assert label == f"{name}\n(2, 3) float64"
        assert 'style="filled"' in style and "peripheries=2" in style
    label, style = label_of(nodes, "bias")  # a constant leaf: not filled
    assert label == "bias\n(3,) float64"
    assert 'style="solid"' in style and "peripheries=2" in style
    (mul,) = [node for node, (label, _) in nodes.items() if label == "Mul"]
    assert sorted(nodes[tail][0] for tail, head in edges if head == mul) == [
        "w\n(2, 3) float64",
        "x\n(2, 3) float64",
    ]
    assert ("op0", "t0") in edges and nodes["op0"][0] == "Sum"  # op -> output tensor


def test_the_graph_of_a_gradient_holds_the_ops_of_the_backward(expression):
    x, w, _, y = expression
    (g,) = tg.grad(y, [x], create_graph=True)
    nodes, edges = parse(to_dot(g, names={"x": x, "w": w, "g": g}))
    # Recorded by the backward: Tanh's grad * (1 - t * t) is a Mul, a Sub and a Mul, and
    # Mul's grad * w one more Mul. Sum's backward broadcast a constant and recorded nothing.
    # The forward's Mul, Add and Tanh come along, since the gradient depends on them.
    assert op_labels(nodes) == Counter({"Mul": 4, "Sub": 1, "Tanh": 1, "Add": 1})
    assert len(edges) == 2 * 4 + 2 + 1 + 2 + 7
    assert label_of(nodes, "g")[0] == "g\n(2, 3) float64"
    for name in ("x", "w"):
        label, style = label_of(nodes, name)
        assert 'style="filled"' in style and "peripheries=2" in style
    assert ("op0", "t0") in edges and nodes["op0"][
        0
    ] == "Mul"  # g = (Tanh's share, passed on by Add) * w
    (share, weight) = [nodes[tail][0] for tail, head in edges if head == "op0"]
    assert share == "(2, 3) float64" and weight == "w\n(2, 3) float64"


def test_a_leaf_alone_and_unused_names():
    x = tg.tensor(np.zeros((4, 1)), dtype="float32")
    other = tg.tensor([1.0])
    nodes, edges = parse(to_dot(x, names={"x": x, "not in the graph": other}))
    assert nodes == {
        "t0": ("x\n(4, 1) float32", 'shape=box, style="solid", fillcolor="#cfe2f3", peripheries=2')
    }
    assert edges == []


def test_the_output_is_deterministic_and_numbered_in_walk_order(expression):
    x, w, b, y = expression
    source = to_dot(y, names={"x": x, "w": w, "bias": b})
    assert source == to_dot(y, names={"x": x, "w": w, "bias": b})
    nodes, _ = parse(source)
    # Depth first from y, first inputs first: y, tanh(.), x*w+b, x*w, x, w, then b.
    assert [nodes[f"t{i}"][0].split("\n")[0] for i in (4, 5, 6)] == ["x", "w", "bias"]
    assert [nodes[f"op{i}"][0] for i in range(4)] == ["Sum", "Tanh", "Add", "Mul"]
    ids = [line.split()[0] for line in source.splitlines() if "[label=" in line]
    assert ids == list(nodes)
    assert [i for i in ids if i.startswith("t")] == [f"t{i}" for i in range(7)]
    assert [i for i in ids if i.startswith("op")] == [f"op{i}" for i in range(4)]


def test_labels_are_quoted():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    source = to_dot(x * 2.0, names={'say "hi"\\': x})
    assert r'label="say \"hi\"\\\n(2,) float32"' in source
    nodes, _ = parse(source)
    assert label_of(nodes, 'say "hi"\\')[0] == 'say "hi"\\\n(2,) float32'


class FastDouble(tg.Function):
    """y = 2 x, posing as a class of tinygan.fast."""

    __module__ = "tinygan.fast.elementwise"

    def forward(self, x):
        return x * 2.0

    def backward(self, grad):
        return grad * 2.0


def test_fast_path_ops_are_marked():
    x = tg.tensor([1.0], requires_grad=True)
    nodes, _ = parse(to_dot(FastDouble()(x).sum()))
    assert op_labels(nodes) == Counter({"Sum": 1, "FastDouble (fast path)": 1})
    (fast,) = [style for label, style in nodes.values() if label.endswith("(fast path)")]
    assert 'style="filled"' in fast and "ellipse" in fast
    assert 'style="solid"' in nodes["op0"][1]  # Sum, from tinygan.ops: not marked


def test_a_freed_graph_is_marked(expression):
    *_, y = expression
    y.backward()  # frees the inputs of every op
    nodes, edges = parse(to_dot(y))
    assert nodes["op0"][0] == "Sum\n(inputs freed by backward)"
    assert edges == [("op0", "t0")] and len(nodes) == 2


def test_a_long_chain_needs_no_recursion():
    x = tg.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    nodes, edges = parse(to_dot(y))
    assert op_labels(nodes) == Counter({"Mul": 5000})
    assert len(edges) == 3 * 5000


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not on PATH")
def test_graphviz_renders_it(expression):
    x, w, _, y = expression
    (g,) = tg.grad(y, [x], create_graph=True)
    source = to_dot(g, names={'x "input"\\': x, "w": w})
    result = subprocess.run(
        ["dot", "-Tsvg"], input=source, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert "<svg" in result.stdout and result.stdout.count('class="node"') == 19
    assert "Sub</text>" in result.stdout and "x &quot;input&quot;\\</text>" in result.stdout
