"""Chapter 01 questions reject plausible wrong answers with the right feedback."""

import pytest

from conftest import assert_rejected
from ganlib import grading

NB = "01_minimax_games.ipynb"

WRONG = {
    "q1": ("simultaneous_step", "def simultaneous_step(grad, x, y, eta):\n    gx, gy = grad(x, y)\n    return x - eta * gx, y - eta * gy",
           "moves *along* df/dy"),
    "q2": ("alternating_step", "def alternating_step(grad, x, y, eta):\n    gx, gy = grad(x, y)\n    return x - eta * gx, y + eta * gy",
           "used the gradient at the old x"),
    "q2b": ("alternating_step", "def alternating_step(grad, x, y, eta):\n    _, gy = grad(x, y)\n    y2 = y + eta * gy\n    return x - eta * grad(x, y2)[0], y2",
            "x moves first"),
    "q3": ("extragradient_step", "def extragradient_step(grad, x, y, eta):\n    gx, gy = grad(x, y)\n    xh, yh = x - eta * gx, y + eta * gy\n    gx, gy = grad(xh, yh)\n    return xh - eta * gx, yh + eta * gy",
           "from the *old* point"),
    "q4": ("optimistic_step", "def optimistic_step(grad, x, y, x_prev, y_prev, eta):\n    gx, gy = grad(x, y)\n    px, py = grad(x_prev, y_prev)\n    return x - eta * gx + 2 * eta * px, y + eta * gy - 2 * eta * py",
           "factor 2 belongs to the *current* gradient"),
    "q4b": ("optimistic_step", "def optimistic_step(grad, x, y, x_prev, y_prev, eta):\n    gx, gy = grad(x, y)\n    return x - 2 * eta * gx, y + 2 * eta * gy",
            "previous gradient is ignored"),
    "q5": ("per_step_factor", "import numpy as np\ndef per_step_factor(rule, eta):\n    return 1 + eta**2 if rule == 'simultaneous' else {'alternating': 1.0, 'extragradient': 1 - eta**2 + eta**4}.get(rule, 0.5)",
           "squared modulus"),
    "q6": ("CONVERGE", "CONVERGE = {'extragradient', 'optimistic', 'alternating'}\nDIVERGE = {'simultaneous'}",
           "neither converges nor diverges"),
    "q6b": ("CONVERGE", "CONVERGE = {'extragradient'}\nDIVERGE = {'simultaneous'}", "'optimistic' does converge"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_plausible_wrong_answer_is_rejected_with_hint(case, make_notebook):
    name, source, hint = WRONG[case]
    assert_rejected(make_notebook, NB, "01", name, source, case[:2], hint, seed=11)


def test_hard_coded_example_does_not_pass(make_notebook):
    src = "def simultaneous_step(grad, x, y, eta):\n    return 0.9, 1.1"
    report = grading.grade_notebook(make_notebook([src], chapter="01"), seed=0)
    assert report.results[0].status == grading.FAILED
