"""Chapter 09, evaluating GANs: graded questions.

Each answer is compared with :mod:`ganlib.metrics` on fresh random inputs: Gaussians with
random, non-diagonal covariances for the Frechet distance (diagonal ones would let an
elementwise square root pass), random class probabilities for the classifier score, random
point clouds for the k-NN radii and precision, and collapsed label sets for the histogram.
"""

from __future__ import annotations

import numpy as np

from ganlib import metrics
from ganlib.grading import CheckFailed, as_float_array, expect_close, question, to_numpy

ELEMENTWISE_HINT = ("that is an elementwise square root of S1 S2 (np.sqrt works entry by entry): FID needs the "
                    "matrix square root (S1 S2)^(1/2), e.g. the square roots of the eigenvalues of "
                    "S1^(1/2) S2 S1^(1/2). On diagonal covariances the two agree, which hides the mistake.")


def _spd(rng, d, positive=False):
    """A random covariance; with ``positive`` all its entries are positive (so S1 S2 has no negative entry)."""
    if positive:
        a = rng.uniform(0.1, 1.0, size=(d, d))
        return a @ a.T + 0.1 * np.eye(d)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * rng.uniform(0.3, 3.0, size=d)) @ q.T


def _is_complex(value) -> bool:
    try:
        return isinstance(value, complex) or np.iscomplexobj(np.asarray(value))
    except Exception:
        return False


def _scalar(value, what, nonfinite_hint=None) -> float:
    if _is_complex(value):
        raise CheckFailed(f"{what} returned a complex number: the distance is real. If your matrix square root is "
                          "complex, check that the imaginary part is tiny, then keep the real part (np.real) - "
                          "or use a symmetric form whose eigenvalues are real.")
    arr = as_float_array(value, what, nonfinite_hint=nonfinite_hint)
    if arr.size != 1:
        raise CheckFailed(f"{what} should return one number, got shape {arr.shape}")
    return float(arr.reshape(()))


def _elementwise(mu1, s1, mu2, s2):
    with np.errstate(invalid="ignore"):
        return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.sqrt(s1 @ s2)))


def _psd_sqrt(s):
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


# --------------------------------------------------------------------------- Q1 Frechet distance


@question("q1", "the Frechet distance between two Gaussians", 3, needs=["frechet_distance"])
def check_q1(rng, frechet_distance):
    what = "frechet_distance(mu1, S1, mu2, S2)"
    one_d = _scalar(frechet_distance(np.array([0.0]), np.array([[1.0]]), np.array([1.0]), np.array([[4.0]])),
                    what + " for N(0, 1) and N(1, 4)", nonfinite_hint=ELEMENTWISE_HINT)
    expect_close(one_d, 2.0, what + " for N(0, 1) and N(1, 4)", rtol=1e-9, wrong={
        "the factor 2 in front of (S1 S2)^(1/2) is missing: 1 + 1 + 4 - 2 * 2 = 2": 1.0 + 5.0 - 2.0,
        "the mean term is missing: the means differ by 1, which adds 1 to the distance": 1.0,
    })
    for positive in (True, False):  # first: S1 S2 has positive entries, so the elementwise version is finite
        d = int(rng.integers(3, 7))
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = _spd(rng, d, positive), _spd(rng, d, positive)
        want = metrics.frechet_distance(mu1, s1, mu2, s2)
        got = _scalar(frechet_distance(mu1.copy(), s1.copy(), mu2.copy(), s2.copy()), what, ELEMENTWISE_HINT)
        diff2 = float(np.sum((mu1 - mu2) ** 2))
        tr = want - diff2
        expect_close(got, want, f"{what} in {d} dimensions", rtol=1e-6, atol=1e-8, wrong={
            ELEMENTWISE_HINT: _elementwise(mu1, s1, mu2, s2),
            "sqrt(S1) sqrt(S2) is not (S1 S2)^(1/2) unless S1 and S2 commute: take the square root of the "
            "product (or of S1^(1/2) S2 S1^(1/2)), not the product of square roots":
                diff2 + np.trace(s1 + s2 - 2 * _psd_sqrt(s1) @ _psd_sqrt(s2)),
            "the mean term is ||mu1 - mu2||^2: square the norm": np.sqrt(diff2) + tr,
            "the mean term ||mu1 - mu2||^2 is missing": tr,
            "the factor 2 in front of Tr (S1 S2)^(1/2) is missing":
                diff2 + np.trace(s1 + s2) - (np.trace(s1 + s2) - tr) / 2,
        })


# --------------------------------------------------------------------------- Q2 classifier score


def _probs(rng, n, c):
    logits = rng.normal(0.0, rng.uniform(1.0, 4.0), size=(n, c))
    logits[:, rng.integers(c)] -= 2.0  # an unpopular class: p(y) is far from uniform
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


@question("q2", "the classifier score exp(E KL(p(y|x) || p(y)))", 2, needs=["classifier_score"])
def check_q2(rng, classifier_score):
    what = "classifier_score(probs)"
    n, c = int(rng.integers(50, 200)), int(rng.integers(3, 11))
    p = _probs(rng, n, c)
    want = metrics.classifier_score(p)
    py = p.mean(0)
    kl = np.sum(p * (np.log(p) - np.log(py)), axis=1)
    reverse = np.sum(py * (np.log(py) - np.log(p)), axis=1)
    got = _scalar(classifier_score(p.copy()), what)
    expect_close(got, want, what, rtol=1e-7, wrong={
        "that is E_x KL(p(y|x) || p(y)) itself: the score is its exponential": kl.mean(),
        "the KL divergence is the wrong way round: KL(p(y|x) || p(y)) = sum_y p(y|x) log(p(y|x) / p(y))":
            np.exp(reverse.mean()),
        "p(y) is the marginal over all samples, p(y) = mean over x of p(y|x), not a uniform distribution":
            np.exp(np.mean(np.sum(p * (np.log(p) + np.log(c)), axis=1))),
        "the exponential of the mean KL, not the mean of the exponentials": np.mean(np.exp(kl)),
        "use the natural logarithm (np.log), as in the definition": np.exp(kl.mean() / np.log(2)),
    })
    onehot = np.eye(c)[np.arange(4 * c) % c]  # confident and balanced: the maximum, c
    with np.errstate(divide="ignore", invalid="ignore"):
        top = _scalar(classifier_score(onehot), what + " on one-hot rows",
                      nonfinite_hint="0 log 0 must count as 0: one-hot rows hold zeros (use np.where or np.xlogy-style masking)")
    expect_close(top, float(c), what + f" on one-hot rows spread over all {c} classes", rtol=1e-7)


# --------------------------------------------------------------------------- Q3 k-NN radii and precision


@question("q3", "k-NN radii and improved precision", 3, needs=["knn_radii", "precision"])
def check_q3(rng, knn_radii, precision):
    n, d, k = int(rng.integers(40, 90)), int(rng.integers(2, 6)), int(rng.integers(2, 5))
    real = rng.normal(size=(n, d))
    fake = rng.normal(0.6, 0.8, size=(int(rng.integers(40, 90)), d))
    dist = np.sqrt(((real[:, None] - real[None]) ** 2).sum(-1))
    srt = np.sort(dist, axis=1)
    want_r = srt[:, k]
    got_r = as_float_array(knn_radii(real.copy(), k), f"knn_radii(feats, k={k})", (n,))
    expect_close(got_r, want_r, f"knn_radii(feats, k={k})", rtol=1e-7, atol=1e-9, wrong={
        "each point is its own nearest neighbour at distance 0: skip it, the radius is the distance to the "
        "k-th nearest *other* point": srt[:, k - 1],
        "these are squared distances: take the square root": want_r ** 2,
        "that is the (k+1)-th nearest other point: the radius reaches the k-th": srt[:, k + 1],
    })
    want_p = metrics.precision_recall(real, fake, k).precision
    recall = metrics.precision_recall(real, fake, k).recall
    got_p = _scalar(precision(real.copy(), fake.copy(), k), f"precision(real, fake, k={k})")
    d_fr = np.sqrt(((fake[:, None] - real[None]) ** 2).sum(-1))
    expect_close(got_p, want_p, f"precision(real, fake, k={k})", rtol=1e-9, wrong={
        "that is recall: precision asks which *fake* samples fall inside the balls around the *real* ones": recall,
        "a fake sample counts when it is inside ANY real ball (the union), not inside the ball of its nearest "
        "real neighbour only": float(np.mean(d_fr.min(1) <= want_r[d_fr.argmin(1)])),
        "the real balls' radii come from the real set (k-th nearest real neighbour), not from the fakes":
            float(np.mean((d_fr <= np.sort(np.sqrt(((fake[:, None] - fake[None]) ** 2).sum(-1)), 1)[:, k][:, None])
                          .any(1))),
    })


# --------------------------------------------------------------------------- Q4 class histogram


@question("q4", "the class-coverage histogram", 2, needs=["class_histogram"])
def check_q4(rng, class_histogram):
    c = int(rng.integers(5, 11))
    n = int(rng.integers(100, 300))
    # a partly collapsed generator; the last class is never produced
    used = rng.choice(c - 1, size=int(rng.integers(2, c - 2)), replace=False)
    labels = rng.choice(used, size=n)
    labels[0] = used.min()
    probs = np.full((n, c), 0.2 / (c - 1))
    probs[np.arange(n), labels] = 0.8
    want = np.bincount(labels, minlength=c)
    what = f"class_histogram(probs, num_classes={c})"
    got = class_histogram(probs.copy(), c)
    arr = to_numpy(got) if got is not None else None
    if arr is not None and arr.shape != (c,) and arr.ndim == 1 and arr.size == labels.max() + 1:
        raise CheckFailed(f"{what} has {arr.size} entries, expected {c}: classes above the largest predicted "
                          "label are missing; np.bincount(labels, minlength=num_classes) keeps empty classes "
                          "(they are what a collapsed generator leaves behind)")
    got = as_float_array(got, what, (c,))
    expect_close(got, want, what, rtol=0, atol=1e-9, wrong={
        "count the predicted class (argmax) of each sample: summing the probabilities gives a soft histogram":
            probs.sum(0),
        "return counts, not fractions": want / n,
    })


QUESTIONS = [check_q1, check_q2, check_q3, check_q4]
