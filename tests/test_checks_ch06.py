"""Chapter 06 questions reject plausible wrong answers with the right feedback."""

import numpy as np
import pytest

from conftest import assert_questions_fast, assert_rejected
from ganlib import grading

NB = "06_mode_collapse.ipynb"

HEAD = "import numpy as np\n"
GRID_OK = ("def grid_means(side, spacing):\n    c = spacing * (np.arange(side) - (side - 1) / 2)\n"
           "    a, b = np.meshgrid(c, c, indexing='ij')\n    return np.stack([a.ravel(), b.ravel()], 1)\n")
RING_OK = ("def ring_means(k, radius):\n    t = 2 * np.pi * np.arange(k) / k\n"
           "    return radius * np.stack([np.cos(t), np.sin(t)], 1)\n")
SAMPLER = HEAD + "def sample_mixture_2d(n, rng, means, std):\n    means = np.asarray(means, dtype=float)\n"
STATS = (HEAD + "def mode_stats(samples, means, std):\n"
         "    d2 = ((samples[:, None, :] - means[None]) ** 2).sum(2)\n    j = d2.argmin(1)\n"
         "    dist = np.sqrt(d2[np.arange(len(samples)), j])\n")
STATS_END = "    counts = np.bincount(j[good], minlength=len(means))\n    return int((counts > 0).sum()), float(good.mean()), counts\n"
KL = HEAD + "def reverse_kl(counts):\n    counts = np.asarray(counts, dtype=float)\n"
PACK = "def pack(x, m):\n    n = x.shape[0]\n"

WRONG = {
    "q1": ("ring_means", HEAD + "def ring_means(k, radius):\n    t = np.linspace(0, 2 * np.pi, k)\n"
           "    return radius * np.stack([np.cos(t), np.sin(t)], 1)\n" + GRID_OK, "distinct means"),
    "q1b": ("ring_means", HEAD + "def ring_means(k, radius):\n    t = 2 * np.pi * np.arange(k) / k\n"
            "    return radius * np.stack([np.sin(t), np.cos(t)], 1)\n" + GRID_OK, "cos first"),
    "q1c": ("ring_means", HEAD + RING_OK + "def grid_means(side, spacing):\n    c = spacing * np.arange(side)\n"
            "    a, b = np.meshgrid(c, c, indexing='ij')\n    return np.stack([a.ravel(), b.ravel()], 1)\n", "not centred"),
    "q1d": ("ring_means", HEAD + RING_OK + "def grid_means(side, spacing):\n"
            "    c = spacing * (np.arange(side) - (side - 1) / 2)\n    a, b = np.meshgrid(c, c)\n"
            "    return np.stack([a.ravel(), b.ravel()], 1)\n", "another order"),
    "q1e": ("ring_means", HEAD + "def ring_means(k, radius):\n    t = 2 * np.pi * np.arange(k) / k\n"
            "    return np.stack([np.cos(t), np.sin(t)], 1)\n" + GRID_OK, "radius is missing"),
    "q2": ("sample_mixture_2d", SAMPLER + "    lab = rng.integers(len(means), size=n)\n"
           "    return means[lab] + std**2 * rng.normal(size=(n, 2))\n", "rng.normal's scale is the standard deviation"),
    "q2b": ("sample_mixture_2d", SAMPLER + "    lab = rng.integers(len(means))\n"
            "    return means[lab] + std * rng.normal(size=(n, 2))\n", "every sample comes from one mode"),
    "q2c": ("sample_mixture_2d", SAMPLER + "    lab = np.random.randint(len(means), size=n)\n"
            "    return means[lab] + std * np.random.normal(size=(n, 2))\n", "from the `rng` argument"),
    "q2d": ("sample_mixture_2d", SAMPLER + "    lab = rng.integers(len(means), size=n)\n"
            "    return (means[lab] + std * rng.normal(size=(n, 2))).T\n", "one sample per row"),
    "q3": ("mode_stats", STATS + "    good = np.all(np.abs(samples - means[j]) <= 3 * std, axis=1)\n" + STATS_END,
           "(a disc), not if each coordinate"),
    "q3b": ("mode_stats", STATS + "    good = dist <= 3 * std**2\n" + STATS_END, "the variance"),
    "q3c": ("mode_stats", STATS + "    good = dist <= 3 * std\n    counts = np.bincount(j[good], minlength=len(means))\n"
            "    return int(len(set(j.tolist()))), float(good.mean()), counts\n", "captured only by a *high-quality*"),
    "q3d": ("mode_stats", STATS + "    good = dist <= 3 * std\n    counts = np.bincount(j, minlength=len(means))\n"
            "    return int((np.bincount(j[good], minlength=len(means)) > 0).sum()), float(good.mean()), counts\n",
            "counts holds only the high-quality samples"),
    "q3e": ("mode_stats", STATS + "    good = dist <= 3 * std\n    counts = np.bincount(j[good], minlength=len(means))\n"
            "    return int((counts > 0).sum()), int(good.sum()), counts\n", "not a count"),
    "q3f": ("mode_stats", STATS + "    good = d2[np.arange(len(samples)), j] <= 3 * std\n" + STATS_END, "squared distance"),
    "q4": ("reverse_kl", KL + "    p = counts / counts.sum()\n    return float(np.sum(np.log(1 / (len(p) * p)) / len(p)))\n",
           "forward direction"),
    "q4b": ("reverse_kl", KL + "    p = counts[counts > 0] / counts.sum()\n    return float(np.sum(p * np.log2(p * len(counts))))\n",
            "not log2"),
    "q4c": ("reverse_kl", KL + "    p = counts[counts > 0] / counts.sum()\n    return float(-np.sum(p * np.log(p)))\n",
            "entropy"),
    "q4d": ("reverse_kl", KL + "    p = counts / counts.sum()\n    return float(np.sum(p * np.log(p * len(p))))\n",
            "0 log 0 = 0"),
    "q4e": ("reverse_kl", KL + "    c = counts[counts > 0]\n    return float(np.sum(c * np.log(c * len(counts))))\n",
            "normalise the counts"),
    "q5": ("pack", PACK + "    if n % m:\n        raise ValueError('m must divide n')\n"
           "    return x.reshape(m, n // m, *x.shape[1:]).transpose(0, 1).reshape(n // m, m * x.shape[1], *x.shape[2:])\n",
           "pack consecutive samples"),
    "q5b": ("pack", PACK + "    return x[: n - n % m].reshape(n // m, m * x.shape[1], *x.shape[2:])\n", "should raise ValueError"),
    "q5c": ("pack", "import torch\n" + PACK + "    if n % m:\n        raise ValueError('m must divide n')\n"
            "    return torch.cat([x[j::m] for j in range(m)], dim=-1)\n", "concatenated along the channels"),
    "q6": ("hq_ceiling", "import math\ndef hq_ceiling(t):\n    return math.erf(t / math.sqrt(2))\n", "1-D probability"),
    "q6b": ("hq_ceiling", "import math\ndef hq_ceiling(t):\n    return math.erf(t / math.sqrt(2)) ** 2\n", "(a box)"),
    "q6c": ("hq_ceiling", "import math\ndef hq_ceiling(t):\n    return 1 - math.exp(-t ** 2)\n", "the exponent is -t^2 / 2"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_plausible_wrong_answer_is_rejected_with_hint(case, make_notebook):
    name, source, hint = WRONG[case]
    assert_rejected(make_notebook, NB, "06", name, source, case[:2], hint, seed=11)


@pytest.mark.parametrize("seed", range(8))
def test_metric_slips_are_caught_on_every_random_configuration(seed):
    """Each seed draws a ring or a grid with its own std; the box and the low-quality capture are always caught."""
    from ganlib.checks import ch06

    for case in ("q3", "q3c", "q3d"):
        ns = {}
        exec(WRONG[case][1], ns)
        result = ch06.check_q3.evaluate(ns["mode_stats"], rng=np.random.default_rng(seed))
        assert result.status == grading.FAILED and WRONG[case][2] in result.feedback, (case, result.feedback)


@pytest.mark.parametrize("seed", range(8))
def test_the_seven_centres_trap_is_caught_for_every_k(seed):
    from ganlib.checks import ch06

    ns = {}
    exec(WRONG["q1"][1], ns)
    result = ch06.check_q1.evaluate(ns["ring_means"], ns["grid_means"], rng=np.random.default_rng(seed))
    assert result.status == grading.FAILED and "distinct means" in result.feedback


def test_questions_are_fast():
    from ganlib.checks import ch06

    assert_questions_fast(NB, ch06.QUESTIONS, seeds=range(3), max_numbers=100_000)  # q2: 40,000 draws of the sampler
