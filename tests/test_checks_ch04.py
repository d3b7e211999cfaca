"""Chapter 04 questions reject plausible wrong answers with the right feedback."""

import pytest

from conftest import assert_rejected
from ganlib import grading

NB = "04_training_dynamics.ipynb"

EIG = "import numpy as np\ndef instance_noise_eigenvalues(fprime0, fsecond0, sigma):\n    m = {mean}\n    r = np.sqrt(complex(m * m - fprime0**2))\n    return np.array([m + r, m - r])"
ALT = "import numpy as np\ndef alternating_eigenvalues(h, fprime0, n_g, n_d):\n    c = 1 - {a2} / 2\n    r = np.sqrt(complex(c * c - 1))\n    return np.array([c + r, c - r])"

WRONG = {
    "q1": ("dirac_field", "def dirac_field(theta, psi, fprime):\n    t = psi * theta\n    return psi * fprime(t), theta * fprime(t)",
           "generator minimises L"),
    "q1b": ("dirac_field", "def dirac_field(theta, psi, fprime):\n    t = psi * theta\n    return -theta * fprime(t), psi * fprime(t)",
            "chain rule"),
    "q1c": ("dirac_field", "def dirac_field(theta, psi, fprime):\n    t = psi * theta\n    return -psi * fprime(-t), theta * fprime(t)",
            "non-saturating"),
    "q2": ("r1_field", "def r1_field(theta, psi, fprime, gamma):\n    v1, v2 = dirac_field(theta, psi, fprime)\n    return v1, v2 - gamma / 2 * psi",
           "not gamma/2 psi"),
    "q2b": ("r1_field", "def r1_field(theta, psi, fprime, gamma):\n    v1, v2 = dirac_field(theta, psi, fprime)\n    return v1, v2 + gamma * psi",
            "*subtracted*"),
    "q3": ("instance_noise_eigenvalues", EIG.format(mean="fsecond0 * sigma**2 / 2"), "*and* to the generated samples"),
    "q3b": ("instance_noise_eigenvalues", EIG.format(mean="fsecond0 * sigma"), "enters squared"),
    "q4": ("critical_gamma", "def critical_gamma(fprime0):\n    return fprime0", "discriminant"),
    "q5": ("alternating_eigenvalues", ALT.format(a2="(n_g + n_d) * (h * fprime0) ** 2"), "multiply"),
    "q5b": ("alternating_eigenvalues", "import numpy as np\ndef alternating_eigenvalues(h, fprime0, n_g, n_d):\n"
            "    return np.array([1 + 1j * h * fprime0, 1 - 1j * h * fprime0])", "determinant 1"),
    "q6": ("LOCALLY_CONVERGENT", "LOCALLY_CONVERGENT = {'instance_noise', 'gradient_penalty', 'gradient_penalty_critical', 'consensus', 'nsgan'}",
           "same imaginary eigenvalues"),
    "q6b": ("LOCALLY_CONVERGENT", "LOCALLY_CONVERGENT = {'instance_noise', 'gradient_penalty', 'consensus'}",
            "'gradient_penalty_critical' is missing"),
    "q6c": ("LOCALLY_CONVERGENT", "LOCALLY_CONVERGENT = {'instance_noise', 'gradient_penalty', 'gradient_penalty_critical', 'consensus', 'wgan_gp'}",
            "towards g0"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_plausible_wrong_answer_is_rejected_with_hint(case, make_notebook):
    name, source, hint = WRONG[case]
    key = case[:2]
    # the solution's r1_field calls dirac_field, so a wrong Q1 answer may also fail Q2
    assert_rejected(make_notebook, NB, "04", name, source, key, hint, seed=5,
                    may_also_fail=("q2",) if key == "q1" else ())


def test_hard_coded_numbers_do_not_pass(make_notebook):
    cells = ["import numpy as np",
             "def critical_gamma(fprime0):\n    return 1.0",
             "def alternating_eigenvalues(h, fprime0, n_g, n_d):\n    return np.array([0.995 + 0.099875j, 0.995 - 0.099875j])"]
    report = grading.grade_notebook(make_notebook(cells, chapter="04"), seed=0)
    results = {r.key: r for r in report.results}
    assert results["q4"].status == grading.FAILED and results["q5"].status == grading.FAILED
