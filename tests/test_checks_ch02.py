"""Chapter 02 questions reject plausible wrong answers with the right feedback."""

import pytest

from conftest import assert_rejected
from ganlib import grading

NB = "02_gan_objective.ipynb"
IMPORT = "import numpy as np\n"

WRONG = {
    "q1": ("optimal_discriminator", "def optimal_discriminator(p_data, p_g):\n    return p_g / (p_data + p_g)",
           "arguments are swapped"),
    "q1b": ("optimal_discriminator", "def optimal_discriminator(p_data, p_g):\n    return p_data / p_g",
            "density ratio, not a probability"),
    "q2": ("value_function", "def value_function(D, p_data, p_g, dx):\n"
           "    return np.sum(p_data * np.log(1 - D) + p_g * np.log(D)) * dx", "swapped"),
    "q2b": ("value_function", "def value_function(D, p_data, p_g, dx):\n"
            "    return -np.sum(p_data * np.log(D) + p_g * np.log(1 - D)) * dx", "sign is flipped"),
    "q2c": ("value_function", "def value_function(D, p_data, p_g, dx):\n"
            "    return np.sum(p_data * np.log(D) + p_g * np.log(1 - D))", "forgot the factor dx"),
    "q2d": ("value_function", "def value_function(D, p_data, p_g, dx):\n"
            "    return np.sum(p_data * np.log(D) + p_g * np.log(1 - D)) * dx", "0 * log 0"),
    "q3": ("jsd", "def jsd(p, q, dx):\n    return np.sum(p * np.log(p / q)) * dx", "KL(p || q)"),
    "q3b": ("jsd", "def jsd(p, q, dx):\n    m = (p + q) / 2\n"
            "    return (np.sum(p * np.log2(p / m)) + np.sum(q * np.log2(q / m))) * dx / 2", "in bits"),
    "q3c": ("jsd", "def jsd(p, q, dx):\n    m = (p + q) / 2\n"
            "    return (np.sum(p * np.log(p / m)) + np.sum(q * np.log(q / m))) * dx / 2", "0 * log 0"),
    "q3d": ("jsd", "def jsd(p, q, dx):\n    m = (p + q) / 2\n"
            "    return (np.sum(p * np.log(p / m)) + np.sum(q * np.log(q / m))) * dx", "twice the JSD"),
    "q4": ("bce_with_logits", "def bce_with_logits(logits, targets):\n    D = 1 / (1 + np.exp(-logits))\n"
           "    return -np.mean(targets * np.log(D) + (1 - targets) * np.log(1 - D))", "log(0) = -inf"),
    "q4b": ("bce_with_logits", "def bce_with_logits(logits, targets):\n"
            "    D = np.clip(1 / (1 + np.exp(-logits)), 1e-7, 1 - 1e-7)\n"
            "    return -np.mean(targets * np.log(D) + (1 - targets) * np.log(1 - D))", "Clipping D"),
    "q4c": ("bce_with_logits", "def bce_with_logits(logits, targets):\n"
            "    sp = lambda z: np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))\n"
            "    return float(np.mean((1 - targets) * sp(-logits) + targets * sp(logits)))", "labels are swapped"),
    "q4d": ("bce_with_logits", "def bce_with_logits(logits, targets):\n"
            "    sp = lambda z: np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))\n"
            "    return -float(np.mean(targets * sp(-logits) + (1 - targets) * sp(logits)))", "sign is flipped"),
    "q4e": ("bce_with_logits", "def bce_with_logits(logits, targets):\n"
            "    sp = lambda z: np.log1p(np.exp(z))\n"
            "    return float(np.mean(targets * sp(-logits) + (1 - targets) * sp(logits)))", "overflows to inf"),
    "q5": ("generator_loss_grads", "def generator_loss_grads(a):\n    D = 1 / (1 + np.exp(-a))\n    return -D, 1 - D",
           "*objective* log D"),
    "q5b": ("generator_loss_grads", "def generator_loss_grads(a):\n    D = 1 / (1 + np.exp(-a))\n    return D, -(1 - D)",
            "sign error"),
    "q5c": ("generator_loss_grads", "def generator_loss_grads(a):\n    D = 1 / (1 + np.exp(-a))\n    return -(1 - D), -D",
            "swapped"),
    "q5d": ("generator_loss_grads", "def generator_loss_grads(a):\n    D = 1 / (1 + np.exp(-a))\n"
            "    return -1 / (1 - D), -1 / D", "derivative with respect to D"),
    "q6": ("C_MIN", "C_MIN = np.log(4)\nJSD_MAX = np.log(2)\nD_STAR_AT_OPTIMUM = 0.5", "negative: -log 4"),
    "q6b": ("C_MIN", "C_MIN = -np.log(4)\nJSD_MAX = 1.0\nD_STAR_AT_OPTIMUM = 0.5", "in bits"),
    "q6c": ("C_MIN", "C_MIN = -np.log(4)\nJSD_MAX = np.log(2)\nD_STAR_AT_OPTIMUM = 0.0", "cannot tell"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_plausible_wrong_answer_is_rejected_with_hint(case, make_notebook):
    name, source, hint = WRONG[case]
    assert_rejected(make_notebook, NB, "02", name, IMPORT + source, case[:2], hint, seed=5)


def test_naive_sigmoid_is_correct_for_moderate_logits_but_fails_at_extreme_logits(make_notebook):
    """The naive BCE passes the first part (so the failure message is about stability, not the formula)."""
    src = ("import numpy as np\ndef bce_with_logits(logits, targets):\n    D = 1 / (1 + np.exp(-logits))\n"
           "    return -np.mean(targets * np.log(D) + (1 - targets) * np.log(1 - D))")
    report = grading.grade_notebook(make_notebook([src], chapter="02"), seed=3)
    q4 = {r.key: r for r in report.results}["q4"]
    assert q4.status == grading.FAILED
    assert "up to +-800" in q4.feedback and "softplus" in q4.feedback


def test_log1p_exp_passes_moderate_logits_and_fails_at_800_under_every_seed():
    """log1p(exp(z)) is exact up to z ~ 709: only the extreme logits, tested on every run, reveal it."""
    import numpy as np

    from ganlib.checks import ch02

    def bce_with_logits(logits, targets):
        sp = lambda z: np.log1p(np.exp(z))  # noqa: E731
        return float(np.mean(targets * sp(-logits) + (1 - targets) * sp(logits)))

    a, t = np.linspace(-30, 30, 41), (np.arange(41) % 2).astype(float)
    from ganlib import theory

    assert np.isclose(bce_with_logits(a, t), theory.bce_with_logits(a, t), rtol=1e-12)
    for seed in range(10):
        r = ch02.check_q4.evaluate(bce_with_logits, rng=np.random.default_rng(seed))
        assert r.status == grading.FAILED and "+-800" in r.feedback


def test_hard_coded_example_does_not_pass(make_notebook):
    src = "C_MIN = -1.386294\nJSD_MAX = 0.693147\nD_STAR_AT_OPTIMUM = 0.5\ndef jsd(p, q, dx):\n    return 0.0478"
    report = grading.grade_notebook(make_notebook([src], chapter="02"), seed=0)
    results = {r.key: r for r in report.results}
    assert results["q3"].status == grading.FAILED
    assert results["q6"].passed  # six decimals are accepted for the constants
