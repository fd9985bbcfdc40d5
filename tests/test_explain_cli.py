"""The chainrule command: explain and derive, their output and their exit codes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chainrule.cli import main

HAS_DOT = shutil.which("dot") is not None
SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_no_command_explains_the_sigmoid_neuron(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "CS231n sigmoid neuron" in out
    assert "f = 0.7311" in out
    assert "df/dw0 = -0.1966" in out and "df/dx0 = 0.3932" in out and "df/dx1 = -0.5898" in out
    assert "-1 / x² = -0.53" in out and "exp(x) = 0.37" in out  # the step table


def test_explain_without_expression_is_the_same_neuron(capsys):
    assert main(["explain"]) == 0
    assert "df/dw2 = 0.1966" in capsys.readouterr().out


def test_explain_an_expression(capsys):
    assert main(["explain", "(x + y) * z", "--at", "x=-2", "y=5", "z=-4"]) == 0
    out = capsys.readouterr().out
    assert "f = -12.0000" in out
    assert "df/dx = -4.0000" in out and "df/dy = -4.0000" in out and "df/dz = 3.0000" in out


def test_explain_a_tensor_expression(capsys):
    assert main(["explain", "sum(W @ v)", "--at", "W=[[1, 2], [3, 4]]", "v=[1, -1]"]) == 0
    out = capsys.readouterr().out
    assert "f = -2.0000" in out and "df/dv = [4., 6.]" in out and "2×2" in out


def test_explain_markdown(capsys):
    assert main(["explain", "x * x", "--at", "x=3", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| step | node |" in out and "3.00 (from f) + 3.00 (from f) = 6.00" in out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["explain", "x.__class__", "--at", "x=1"], "attribute access"),
        (["explain", "x +", "--at", "x=1"], "invalid syntax"),
        (["explain", "x + y", "--at", "x=1"], "missing value for y"),
        (["explain", "x", "--at", "x=1", "q=2"], "unknown name 'q'"),
        (["explain", "foo(x)", "--at", "x=1"], "unknown function 'foo'"),
        (["explain", "W @ v", "--at", "W=[[1, 2]]", "v=[1, 2, 3]"], "matmul"),
        (["explain", "x ** 100000", "--at", "x=1"], "too large"),
        (["explain", "x", "--at", "x=abc"], "expected a number"),
        (["explain", "x", "--at", "x"], "NAME=VALUE"),
        (["explain", "2 * 3"], "no variables"),
        (["explain", "x", "--at", "x=1", "--svg", "g.jpeg"], "must end in .svg, .png"),
        (["derive", "z = W @ a; E = sum(z)", "--shape", "W=2x3"], "missing shape for a"),
        (["derive", "z = W @ a; E = sum(z)", "--shape", "W=2x3", "a=4x1"], "matmul"),
        (["derive", "z = W @ a; E = sum(z)", "--shape", "W=2x3.5", "a=3x1"], "write the shape as numbers"),
        (["derive", "z = lambda: 1", "--shape", "W=2x3"], "lambda"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_derive_default_and_latex(capsys):
    assert main(["derive"]) == 0
    out = capsys.readouterr().out
    assert "dz = dh ⊙ h ⊙ (1 − h)" in out and "dW = dz · aᵀ" in out and "da = Wᵀ · dz" in out
    assert "checked against central differences at the given sizes: max relative error" in out
    assert main(["derive", "z = W @ a + b; h = sigmoid(z); E = sum(h)", "--shape", "W=64x32", "a=32x1", "b=64x1"]) == 0
    assert "64×32" in capsys.readouterr().out
    assert main(["derive", "--latex"]) == 0
    assert r"dz &= dh \odot h \odot" in capsys.readouterr().out


def test_derive_batched(capsys):
    assert main(["derive", "z = a @ W.T + b; E = sum(relu(z))", "--shape", "a=4x3", "W=5x3", "b=5"]) == 0
    out = capsys.readouterr().out
    assert "db = Σ_rows dz" in out


def test_explain_writes_the_drawing(tmp_path, capsys):
    dot = tmp_path / "g.dot"
    assert main(["explain", "--svg", str(dot)]) == 0
    assert "drawing written to" in capsys.readouterr().out
    assert "1/x" in dot.read_text()
    if HAS_DOT:  # CI installs Graphviz; elsewhere only this assertion is skipped
        svg = tmp_path / "g.svg"
        assert main(["explain", "(x+y)*z", "--at", "x=-2", "y=5", "z=-4", "--svg", str(svg)]) == 0
        assert "<svg" in svg.read_text()


def test_python_dash_m():
    run = subprocess.run(
        [sys.executable, "-m", "chainrule", "explain", "x*y", "--at", "x=2", "y=3"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": SRC, "PATH": ""},
    )
    assert run.returncode == 0 and "df/dx = 3.0000" in run.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "chainrule", "explain", "x.y", "--at", "x=2"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": SRC, "PATH": ""},
    )
    assert bad.returncode == 2 and "attribute access" in bad.stderr


def test_derive_with_a_symbolic_batch(capsys):
    assert main(["derive", "z = a @ W.T + b; E = sum(tanh(z))", "--shape", "a=Bx3", "W=5x3", "b=5"]) == 0
    out = capsys.readouterr().out
    assert "dW = dzᵀ · a" in out and "B×3" in out and "B = 7" in out


# --- the command line as a learner types it -------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "x * y", "--at", "x=3", "y=2"],
        ["explain", "--at", "x=3", "y=2", "x * y"],  # options first
        ["explain", "--at", "x=3", "--at", "y=2", "x * y"],  # --at repeated
        ["explain", "x * y", "--at", "x=3,y=2"],  # comma-separated
        ["explain", "--at", "x=3,y=2", "--precision", "3", "x * y"],
    ],
)
def test_values_may_come_in_any_order_and_spelling(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "f = 6.0000" in out and "df/dx = 2.0000" in out and "df/dy = 3.0000" in out


def test_list_values_keep_their_commas(capsys):
    assert main(["explain", "sum(w * x)", "--at", "w=[1, 2],x=[3, 4]"]) == 0
    assert "f = 11.0000" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["-1", "16", "50", "two"])
def test_precision_is_bounded(capsys, value):
    assert main(["explain", "x * x", "--at", "x=3", "--precision", value]) == 2
    err = capsys.readouterr().err
    assert "--precision" in err and ("0 to 15" in err or "whole number" in err) and "Traceback" not in err


def test_precision_15_shows_15_decimals(capsys):
    assert main(["explain", "x / 3", "--at", "x=1", "--precision", "15"]) == 0
    assert "0.333333333333333" in capsys.readouterr().out


def test_version(capsys):
    import chainrule as cr

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"chainrule {cr.__version__}"


def test_max_gate_is_visible_and_header_shows_the_parse(capsys):
    assert main(["explain", "max(z, w)", "--at", "z=2", "w=-1"]) == 0
    out = capsys.readouterr().out
    assert "[z > w] + ½[z = w] = 1.00" in out and "[w > z] + ½[z = w] = 0.00" in out
    assert main(["explain", "1 / 1 + exp(-p)", "--at", "p=1"]) == 0
    out = capsys.readouterr().out
    assert "parsed as f = (1 / 1) + exp(-p)" in out and "note: 1 / 1 is evaluated first" in out


def test_table_follows_the_terminal_width():
    env = {"PYTHONPATH": SRC, "COLUMNS": "80", "PATH": os.environ["PATH"]}
    done = subprocess.run(
        [sys.executable, "-m", "chainrule"], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    widths = [len(line) for line in done.stdout.splitlines()]
    assert max(widths) <= 80 and "df/dx1 = -0.5898" in done.stdout


def test_without_any_renderer_the_table_is_printed_before_the_error(tmp_path):
    # no dot on PATH and a Python that cannot find graphviz-pure: the drawing fails, the table does not
    env = {"PYTHONPATH": SRC, "PATH": str(tmp_path), "CHAINRULE_NO_PIP_RENDERER": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "chainrule", "explain", "--svg", str(tmp_path / "n.svg")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert "df/dx1 = -0.5898" in done.stdout and "-1 / x² = -0.53" in done.stdout
    assert "pip install 'chainrule[explain]'" in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1


def test_without_dot_the_svg_is_drawn_by_the_pip_renderer(tmp_path):
    pytest.importorskip("rich")
    from chainrule.explain.draw import _pip_renderer

    if _pip_renderer() is None:
        pytest.skip("graphviz-pure is not installed (the explain and test extras bring it)")
    env = {"PYTHONPATH": SRC, "PATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "chainrule", "explain", "--svg", str(tmp_path / "n.svg")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "<svg" in (tmp_path / "n.svg").read_text() and "drawing written to" in done.stdout


def test_output_piped_into_head_stops_quietly():
    env = {"PYTHONPATH": SRC, "PATH": os.environ["PATH"]}
    # the reader goes away before anything is written (as `| head -1` can): every write meets a closed pipe
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainrule"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err


def test_shape_takes_x_in_either_case_and_refuses_a_star(capsys):
    from chainrule.cli import main

    assert main(["derive", "z = W @ a; E = sum(z)", "--shape", "W=4X3", "a=3x1", "--no-check"]) == 0
    out = capsys.readouterr().out
    assert "z = W · a   4×1" in out and "4×3" in out  # W read as 4×3
    assert main(["derive", "z = W @ a; E = sum(z)", "--shape", "W=4*3", "a=3x1"]) == 2
    assert "'*' is not a shape separator" in capsys.readouterr().err


def test_derive_at_with_a_named_subterm_and_nan_entries_prints_them(capsys):
    from chainrule.cli import main

    assert main(["derive", "E = sum(x ** y)", "--shape", "x=3", "y=3", "--at", "x=[1,2,3]", "y=[0.5,1,1]"]) == 0
    assert "dx = [0.5000, 1.0000, 1.0000]" in capsys.readouterr().out  # values first, no leading length
    assert main(["derive", "E = sum(log(x))", "--shape", "x=2", "--at", "x=[-1,2]"]) == 0
    captured = capsys.readouterr()
    assert "[nan  nan]" in captured.out and "RuntimeWarning" not in captured.err  # NaN shown, never as 0
    assert main(["derive", "E = sum(x)", "--shape", "x=3", "--seed", "-1"]) == 2
    assert "expected a seed from 0 to 2**32-1, got -1" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["[]", "[[]]", "[[], []]"])
def test_an_empty_value_is_refused_in_one_line(value, capsys):
    # found by the fuzzer: mean(x * y, axis=0) at y=[] ended in a ZeroDivisionError traceback from mean's backward
    assert main(["explain", "mean(x * y, axis=(0,))", "--at", "x=-2", f"y={value}"]) == 2
    err = capsys.readouterr().err
    assert "y: the list holds no numbers" in err and err.count("\n") == 1
