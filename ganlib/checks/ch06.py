"""Chapter 06, mode collapse on 2-D mixtures: graded questions.

Every answer is compared with ganlib's reference on fresh random configurations: the ring
and grid means with :mod:`ganlib.data`, the sampler by its statistics, the VEEGAN/PacGAN
metrics with :func:`ganlib.metrics.mode_coverage` on batches built to separate the right
definition from the usual slips (a box instead of a disc, variance for standard deviation,
modes "captured" by low-quality samples), the reverse KL with
:func:`ganlib.metrics.reverse_kl_uniform`, and PacGAN packing with
:func:`ganlib.train.pack_samples`.
"""

from __future__ import annotations

import math

import numpy as np

from ganlib import data, metrics
from ganlib.grading import CheckFailed, as_float_array, expect_close, expect_tuple, question, to_numpy

# --------------------------------------------------------------------------- Q1 ring and grid means


def _distinct(a: np.ndarray) -> int:
    return len({tuple(np.round(row, 8)) for row in a})


def _same_rows_any_order(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and sorted(map(tuple, np.round(a, 8))) == sorted(map(tuple, np.round(b, 8)))


@question("q1", "ring and grid means", 2, needs=["ring_means", "grid_means"])
def check_q1(rng, ring_means, grid_means):
    for k in (8, int(rng.integers(3, 13))):
        radius = float(rng.choice([1.0, rng.uniform(0.5, 3.0)]))
        want = data.ring_means(k, radius)
        got = as_float_array(ring_means(k, radius), f"ring_means({k}, {radius:.3g})", shape=(k, 2))
        if _distinct(got) == k - 1 and np.allclose(got[0], got[-1]):
            raise CheckFailed(f"ring_means({k}, ...) has only {k - 1} distinct means: the first and the last "
                              "coincide. np.linspace(0, 2 * np.pi, k) includes the angle 2 pi, which is the same "
                              "point as 0; use the angles 2 pi i / k for i = 0, ..., k-1 (or endpoint=False).")
        t = np.linspace(0, 2 * np.pi, k, endpoint=False)
        expect_close(got, want, f"ring_means({k}, {radius:.3g})", atol=1e-9, wrong={
            "row i is radius * (cos(2 pi i / k), sin(2 pi i / k)): cos first, then sin.": want[:, ::-1],
            "the angles are in radians: 2 pi i / k, not 360 i / k degrees.":
                radius * np.stack([np.cos(360 * np.arange(k) / k), np.sin(360 * np.arange(k) / k)], 1),
            "the radius is missing: multiply the unit vectors by radius.": np.stack([np.cos(t), np.sin(t)], 1),
            "that is radius**2 times the unit vectors: the means lie at distance radius from the origin.":
                radius**2 * np.stack([np.cos(t), np.sin(t)], 1),
        })
    for side in (5, int(rng.integers(2, 7))):
        spacing = float(rng.choice([2.0, rng.uniform(0.5, 3.0)]))
        want = data.grid_means(side, spacing)
        got = as_float_array(grid_means(side, spacing), f"grid_means({side}, {spacing:.3g})", shape=(side**2, 2))
        if _same_rows_any_order(got, want) and not np.allclose(got, want):
            raise CheckFailed(f"grid_means({side}, ...) has the right points in another order: row side * a + b "
                              "holds (c_a, c_b), the first coordinate varying slowest (as itertools.product).")
        c0 = spacing * np.arange(side)
        a, b = np.meshgrid(c0, c0, indexing="ij")
        lin = np.linspace(-4, 4, side)
        la, lb = np.meshgrid(lin, lin, indexing="ij")
        expect_close(got, want, f"grid_means({side}, {spacing:.3g})", atol=1e-9, wrong={
            "the grid is not centred: subtract the middle, the coordinates are spacing * (j - (side - 1) / 2).":
                np.stack([a.ravel(), b.ravel()], 1),
            "the coordinates always span [-4, 4]: neighbours must be `spacing` apart, "
            "spacing * (j - (side - 1) / 2).": np.stack([la.ravel(), lb.ravel()], 1),
        })


# --------------------------------------------------------------------------- Q2 the sampler


@question("q2", "sampling a 2-D Gaussian mixture", 2, needs=["sample_mixture_2d"])
def check_q2(rng, sample_mixture_2d):
    k = int(rng.integers(3, 10))
    means = data.ring_means(k, float(rng.uniform(1.0, 3.0)))
    std = float(rng.uniform(0.02, 0.06))
    n = 40_000
    seed = int(rng.integers(2**31))
    x = as_float_array(sample_mixture_2d(n, np.random.default_rng(seed), means, std),
                       "sample_mixture_2d(n, rng, means, std)")
    if x.shape == (2, n):
        raise CheckFailed(f"the samples have shape (2, n) = {x.shape}: return one sample per row, shape (n, 2).")
    if x.shape != (n, 2):
        raise CheckFailed(f"sample_mixture_2d(n, rng, means, std) should have shape ({n}, 2), got {x.shape}")
    again = as_float_array(sample_mixture_2d(n, np.random.default_rng(seed), means, std), "a second call")
    if not np.array_equal(x, again):
        raise CheckFailed("two calls with generators seeded alike gave different samples: draw every random "
                          "number from the `rng` argument (rng.integers, rng.normal), not from np.random.")
    idx, dist = metrics.nearest_mode(x, means)
    counts = np.bincount(idx, minlength=k)
    if np.count_nonzero(counts) == 1:
        raise CheckFailed("every sample comes from one mode: choose the mode independently for each sample, "
                          "labels = rng.integers(k, size=n).")
    resid = x - means[idx]
    spread = float(resid.std())
    if abs(spread / std**2 - 1) < 0.1:
        raise CheckFailed(f"the spread around each mean is std**2 = {std**2:.2g}, not std = {std:.2g}: "
                          "rng.normal's scale is the standard deviation.")
    if abs(spread / std - 1) > 0.03:
        raise CheckFailed(f"the samples spread {spread:.3g} around their means (per coordinate), expected std = {std:.3g}")
    p = 1 / k
    tol = 5 * math.sqrt(n * p * (1 - p))
    if np.any(np.abs(counts - n * p) > tol):
        raise CheckFailed(f"the modes should be equally likely (about {n * p:.0f} samples each), got counts "
                          f"{counts.tolist()}")
    if np.abs(resid.mean(axis=0)).max() > 5 * std / math.sqrt(n):
        raise CheckFailed("the samples are not centred on their means: x = means[label] + std * noise.")


# --------------------------------------------------------------------------- Q3 the metric


def _config(rng):
    if rng.uniform() < 0.5:
        k = int(rng.integers(6, 11))
        means = data.ring_means(k, float(rng.uniform(1.0, 2.0)))
        std = float(rng.uniform(0.01, 0.03))
    else:
        means = data.grid_means(int(rng.integers(3, 6)), float(rng.uniform(1.0, 2.0)))
        std = float(rng.uniform(0.02, 0.06))
    return means, std


def _test_batch(rng, means, std):
    """Good samples on some modes, box corners, far points and 4-7 std points, shuffled."""
    k = len(means)
    order = rng.permutation(k)
    full, corner_modes, far_modes = order[: max(2, k // 3)], order[k // 3: k // 3 + 2], order[-2:]
    parts = [data.sample_mixture(int(rng.integers(150, 300)), rng, means[full], std)]
    # inside the box |dx|, |dy| < 3 std but 3.5 std away: not high quality
    diag = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]]) / math.sqrt(2)
    for j in corner_modes:
        parts.append(means[j] + 3.5 * std * diag)
    # 4 to 7 std from modes that have no good sample: they must not count as captured
    for j in far_modes:
        ang = rng.uniform(0, 2 * np.pi, size=5)
        r = rng.uniform(4.0, 7.0, size=5) * std
        parts.append(means[j] + r[:, None] * np.stack([np.cos(ang), np.sin(ang)], 1))
    x = np.concatenate(parts)
    return x[rng.permutation(len(x))]


def _variant(x, means, std, kind):
    idx, dist = metrics.nearest_mode(x, means)
    k = len(means)
    if kind == "box":
        good = np.all(np.abs(x - means[idx]) <= 3 * std, axis=1)
    elif kind == "variance":
        good = dist <= 3 * std**2
    elif kind == "squared":
        good = dist**2 <= 3 * std
    elif kind == "no_std":
        good = dist <= 3
    else:
        good = dist <= 3 * std
    counts = np.bincount(idx[good], minlength=k)
    return idx, good, counts


@question("q3", "high-quality samples and captured modes", 3, needs=["mode_stats"])
def check_q3(rng, mode_stats):
    for _ in range(2):
        means, std = _config(rng)
        x = _test_batch(rng, means, std)
        ref = metrics.mode_coverage(x, means, std)
        out = expect_tuple(mode_stats(x, means, std), "mode_stats(samples, means, std)",
                           ("modes", "high_quality", "counts"))
        modes, hq, counts = out
        counts = as_float_array(counts, "counts", shape=(len(means),))
        idx, good, _ = _variant(x, means, std, "right")
        wrong_hq = {
            "a sample is high quality if its *distance* to the nearest mean is at most 3 std (a disc), "
            "not if each coordinate is within 3 std (a box).": _variant(x, means, std, "box")[1].mean(),
            "3 standard deviations is 3 * std, not 3 * std**2 (that is the variance).":
                _variant(x, means, std, "variance")[1].mean(),
            "compare the distance (not the squared distance) with 3 * std, or the squared distance with (3 * std)**2.":
                _variant(x, means, std, "squared")[1].mean(),
            "the threshold is 3 standard deviations, 3 * std, not a distance of 3.": _variant(x, means, std, "no_std")[1].mean(),
            "high_quality is a fraction of all samples (between 0 and 1), not a count.": float(good.sum()),
            "high_quality is a fraction, not a percentage.": 100 * float(good.mean()),
        }
        expect_close(as_float_array(hq, "high_quality"), ref.high_quality, "high_quality", wrong=wrong_hq)
        expect_close(counts, ref.counts, "counts", wrong={
            "counts holds only the high-quality samples of each mode, not every sample assigned to it.":
                np.bincount(idx, minlength=len(means)),
        })
        expect_close(as_float_array(modes, "modes"), ref.modes, "modes", wrong={
            "a mode is captured only by a *high-quality* sample whose nearest mode it is; "
            "points 4 to 7 std away do not capture it.": np.count_nonzero(np.bincount(idx, minlength=len(means))),
            "modes is the number of captured modes, not the number of high-quality samples.": float(good.sum()),
        })


# --------------------------------------------------------------------------- Q4 reverse KL


@question("q4", "reverse KL of the mode histogram", 2, needs=["reverse_kl"])
def check_q4(rng, reverse_kl):
    k = int(rng.integers(5, 26))
    counts = rng.integers(1, 200, size=k)
    p = counts / counts.sum()
    want = metrics.reverse_kl_uniform(counts)
    got = as_float_array(reverse_kl(counts.copy()), "reverse_kl(counts)", shape=())
    entropy = -float(np.sum(p * np.log(p)))
    expect_close(got, want, "reverse_kl(counts) (no empty mode)", rtol=1e-9, wrong={
        "that is KL(uniform || p), the forward direction; the reverse KL is KL(p || uniform) = sum_j p_j log(k p_j).":
            float(np.sum(np.log(1 / (k * p)) / k)),
        "use the natural logarithm (nats), not log2.": want / math.log(2),
        "that is the entropy H(p); the reverse KL to the uniform distribution is log k - H(p).": entropy,
        "normalise the counts first: p = counts / counts.sum().": float(np.sum(counts * np.log(counts * k))),
        "sign: KL(p || u) = sum_j p_j log(p_j / u_j) >= 0.": -want,
    })
    counts[rng.choice(k, size=2, replace=False)] = 0
    want = metrics.reverse_kl_uniform(counts)
    got = as_float_array(reverse_kl(counts.copy()), "reverse_kl(counts) with empty modes", shape=(),
                         nonfinite_hint="empty modes contribute 0 (0 log 0 = 0): sum only over the modes with counts > 0.")
    expect_close(got, want, "reverse_kl(counts) with two empty modes", rtol=1e-9)
    one = np.zeros(k, dtype=int)
    one[int(rng.integers(k))] = 2500
    expect_close(as_float_array(reverse_kl(one), "reverse_kl on one mode", shape=()), math.log(k),
                 "reverse_kl when every sample is on one mode (should be log k)", rtol=1e-9)


# --------------------------------------------------------------------------- Q5 PacGAN packing


@question("q5", "PacGAN packing of a batch", 2, needs=["pack"])
def check_q5(rng, pack):
    import torch

    from ganlib.train import pack_samples

    m = int(rng.integers(2, 5))
    n = m * int(rng.integers(2, 7))
    flat = torch.tensor(rng.normal(size=(n, int(rng.integers(2, 5)))))
    images = torch.tensor(rng.normal(size=(n, int(rng.integers(1, 4)), 3, 4)))
    for x, what in ((flat, f"pack(x of shape {tuple(flat.shape)}, {m})"), (images, f"pack(images {tuple(images.shape)}, {m})")):
        got = pack(x.clone(), m)
        if not isinstance(got, torch.Tensor):
            raise CheckFailed(f"{what} should return a torch tensor (it goes straight into D), got {type(got).__name__}")
        want = pack_samples(x, m)
        if got.shape != want.shape:
            raise CheckFailed(f"{what} should have shape {tuple(want.shape)} (n // m packs, m samples side by side"
                              f"{', images concatenated along the channels' if x.dim() == 4 else ''}), got {tuple(got.shape)}")
        strided = x.reshape(m, n // m, *x.shape[1:]).transpose(0, 1).reshape(want.shape)  # x[j], x[j + n/m], ...
        expect_close(to_numpy(got), to_numpy(want), what, wrong={
            "pack consecutive samples: pack j holds samples j*m, ..., j*m + m - 1 (x.reshape(n // m, ...)), "
            "not every (n // m)-th sample.": to_numpy(strided),
        })
    bad = torch.zeros(m * 3 + 1, 2)
    try:
        pack(bad, m)
    except ValueError as exc:
        if str(exc).strip():
            return
        raise CheckFailed("the ValueError for an indivisible batch needs a message saying what went wrong.") from None
    except Exception as exc:
        raise CheckFailed(f"pack(x, m) with a batch of {m * 3 + 1} and m = {m} should raise ValueError with a message, "
                          f"got {type(exc).__name__}") from None
    raise CheckFailed(f"pack(x, m) with a batch of {m * 3 + 1} and m = {m} should raise ValueError: m must divide the "
                      "batch size (otherwise samples are silently dropped or mixed across packs).")


# --------------------------------------------------------------------------- Q6 the 2-D ceiling


@question("q6", "the high-quality ceiling of a perfect generator in 2-D", 1, needs=["hq_ceiling"])
def check_q6(rng, hq_ceiling):
    for t in (3.0, float(rng.uniform(0.5, 4.0))):
        want = metrics.high_quality_ceiling(2, t)
        erf = math.erf(t / math.sqrt(2))
        got = as_float_array(hq_ceiling(t), f"hq_ceiling({t:.3g})", shape=())
        expect_close(got, want, f"hq_ceiling({t:.3g})", rtol=1e-9, wrong={
            "that is the 1-D probability P(|Z| <= t); in 2-D the distance ||Z|| is Rayleigh distributed, "
            "P(||Z|| <= t) = 1 - exp(-t^2 / 2).": erf,
            "that is the square |Z_1|, |Z_2| <= t (a box); high quality is a disc, ||Z|| <= t.": erf**2,
            "the exponent is -t^2 / 2: ||Z||^2 / 2 is exponentially distributed with rate 1.": 1 - math.exp(-t**2),
            "that is the fraction *outside* the disc, exp(-t^2 / 2).": math.exp(-t**2 / 2),
            "a fraction, not a percentage.": 100 * want,
        })


QUESTIONS = [check_q1, check_q2, check_q3, check_q4, check_q5, check_q6]
