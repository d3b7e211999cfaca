"""Chapter 09 questions reject plausible wrong answers with the right feedback."""

import numpy as np
import pytest

from conftest import assert_questions_fast, assert_rejected
from ganlib import grading

NB = "09_evaluation.ipynb"

FD_HEAD = ("import numpy as np\ndef _sqrtm(s):\n    w, v = np.linalg.eigh(s)\n"
           "    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T\n"
           "def frechet_distance(mu1, sigma1, mu2, sigma2):\n    diff = mu1 - mu2\n")
CS_HEAD = "import numpy as np\ndef classifier_score(probs):\n    py = probs.mean(axis=0)\n"
KL = "    kl = np.sum(np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1) / py), 0), axis=1)\n"
RADII = ("import numpy as np\ndef _dist(a, b):\n    return np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))\n"
         "def knn_radii(feats, k):\n    return np.sort(_dist(feats, feats), axis=1)[:, {col}]{power}\n")
PREC = ("def precision(real, fake, k):\n    r = knn_radii(real, k)\n"
        "    return float((_dist(fake, real) <= r[None, :]).any(1).mean())\n")

WRONG = {
    "q1": ("frechet_distance", FD_HEAD + "    return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * np.sqrt(sigma1 @ sigma2)))",
           "elementwise square root"),
    "q1b": ("frechet_distance", FD_HEAD + "    return float(diff @ diff + np.trace(sigma1 + sigma2 - 2 * _sqrtm(sigma1) @ _sqrtm(sigma2)))",
            "unless S1 and S2 commute"),
    "q1c": ("frechet_distance", FD_HEAD + "    m = _sqrtm(sigma1) @ sigma2 @ _sqrtm(sigma1)\n"
            "    return float(np.sqrt(diff @ diff) + np.trace(sigma1 + sigma2) - 2 * np.sqrt(np.clip(np.linalg.eigvalsh(m), 0, None)).sum())",
            "square the norm"),
    "q1d": ("frechet_distance", FD_HEAD + "    m = _sqrtm(sigma1) @ sigma2 @ _sqrtm(sigma1)\n"
            "    return float(diff @ diff + np.trace(sigma1 + sigma2) - np.sqrt(np.clip(np.linalg.eigvalsh(m), 0, None)).sum())",
            "factor 2"),
    "q1e": ("frechet_distance", FD_HEAD + "    ev = np.linalg.eigvals(sigma1 @ sigma2).astype(complex)\n"
            "    return diff @ diff + np.trace(sigma1 + sigma2) - 2 * np.sqrt(ev).sum() + 1e-9j",
            "complex number"),
    "q2": ("classifier_score", CS_HEAD + KL + "    return float(kl.mean())", "exponential"),
    "q2b": ("classifier_score", CS_HEAD + "    return float(np.exp(np.mean(np.sum(probs * np.log(probs * probs.shape[1]), axis=1))))",
            "not a uniform distribution"),
    "q2c": ("classifier_score", CS_HEAD + "    return float(np.exp(np.mean(np.sum(py * np.log(py / probs), axis=1))))",
            "wrong way round"),
    "q2d": ("classifier_score", CS_HEAD + "    return float(np.exp(np.mean(np.sum(probs * np.log(probs / py), axis=1))))",
            "0 log 0"),
    "q2e": ("classifier_score", CS_HEAD + KL + "    return float(np.mean(np.exp(kl)))", "not the mean of the exponentials"),
    "q3": ("knn_radii", RADII.format(col="k - 1", power="") + PREC, "its own nearest neighbour"),
    "q3b": ("knn_radii", RADII.format(col="k", power=" ** 2") + PREC, "squared distances"),
    "q3c": ("knn_radii", RADII.format(col="k", power="") + "def precision(real, fake, k):\n    r = knn_radii(fake, k)\n"
            "    return float((_dist(real, fake) <= r[None, :]).any(1).mean())\n", "that is recall"),
    "q3d": ("knn_radii", RADII.format(col="k", power="") + "def precision(real, fake, k):\n    r = knn_radii(real, k)\n"
            "    d = _dist(fake, real)\n    return float(np.mean(d.min(1) <= r[d.argmin(1)]))\n", "ANY real ball"),
    "q4": ("class_histogram", "import numpy as np\ndef class_histogram(probs, num_classes=10):\n"
           "    return np.bincount(probs.argmax(axis=1))", "minlength"),
    "q4b": ("class_histogram", "def class_histogram(probs, num_classes=10):\n    return probs.sum(axis=0)", "soft histogram"),
    "q4c": ("class_histogram", "import numpy as np\ndef class_histogram(probs, num_classes=10):\n"
            "    return np.bincount(probs.argmax(axis=1), minlength=num_classes) / len(probs)", "counts, not fractions"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_plausible_wrong_answer_is_rejected_with_hint(case, make_notebook):
    name, source, hint = WRONG[case]
    assert_rejected(make_notebook, NB, "09", name, source, case[:2], hint, seed=3)


@pytest.mark.parametrize("seed", range(10))
def test_elementwise_sqrt_is_caught_for_every_draw(seed):
    """The elementwise mistake is caught with its hint whatever the random covariances (finite or NaN)."""
    from ganlib.checks import ch09

    ns = {}
    exec(WRONG["q1"][1], ns)
    result = ch09.check_q1.evaluate(ns["frechet_distance"], rng=np.random.default_rng(seed))
    assert result.status == grading.FAILED and "elementwise square root" in result.feedback


def test_diagonal_covariances_alone_would_not_catch_it():
    """Why the check uses rotated covariances: on diagonal ones the elementwise version is right."""
    from ganlib import metrics

    ns = {}
    exec(WRONG["q1"][1], ns)
    a, b = np.diag([1.0, 2.0, 3.0]), np.diag([3.0, 0.5, 2.0])
    mu = np.zeros(3)
    assert ns["frechet_distance"](mu, a, mu + 1, b) == pytest.approx(metrics.frechet_distance(mu, a, mu + 1, b))


def test_questions_are_fast():
    from ganlib.checks import ch09

    assert_questions_fast(NB, ch09.QUESTIONS, seeds=range(3))
