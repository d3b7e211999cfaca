"""Chapter 06: 2-D mixtures, the VEEGAN/PacGAN mode-coverage metrics, and the chapter's plot and model helpers."""

import itertools
import math
import sys

import numpy as np
import pytest

from ganlib import data, metrics

RING, GRID = data.ring_means(), data.grid_means()


# --------------------------------------------------------------------------- samplers


def test_ring_has_eight_distinct_means_on_the_circle():
    assert RING.shape == (8, 2)
    assert len({tuple(np.round(m, 9)) for m in RING}) == 8
    assert np.allclose(np.hypot(RING[:, 0], RING[:, 1]), 1.0)
    angles = np.mod(np.arctan2(RING[:, 1], RING[:, 0]), 2 * np.pi)
    assert np.allclose(angles, 2 * np.pi * np.arange(8) / 8)
    assert np.allclose(data.ring_means(8, radius=2.0), 2 * RING)
    # the trap the docstring warns about: linspace includes 2 pi, the same point as 0
    t = np.linspace(0, 2 * np.pi, 8)
    trap = np.stack([np.cos(t), np.sin(t)], 1)
    assert len({tuple(np.round(m, 9)) for m in trap}) == 7


def test_grid_means_match_the_papers_product():
    want = np.array(list(itertools.product(range(-4, 5, 2), range(-4, 5, 2))), dtype=float)
    assert np.array_equal(GRID, want)
    assert np.array_equal(data.grid_means(3, spacing=1.0), np.array(list(itertools.product([-1, 0, 1], [-1, 0, 1]))))
    assert np.allclose(data.grid_means(4, spacing=1.0)[0], [-1.5, -1.5])


def test_sample_ring_and_grid_statistics():
    rng = np.random.default_rng(0)
    for sample, means, std in ((data.sample_ring, RING, 0.01), (data.sample_grid, GRID, 0.05)):
        x, lab = sample(200_000, rng, return_labels=True)
        k = len(means)
        resid = x - means[lab]
        assert abs(resid.std() / std - 1) < 0.01
        assert np.abs(resid.mean(axis=0)).max() < 5 * std / np.sqrt(len(x))
        counts = np.bincount(lab, minlength=k)
        p = 1 / k
        assert np.all(np.abs(counts - len(x) * p) < 5 * np.sqrt(len(x) * p * (1 - p)))


def test_sample_mixture_any_dimension_weights_and_per_mode_std():
    rng = np.random.default_rng(1)
    means = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    x, lab = data.sample_mixture(100_000, rng, means, [0.5, 2.0], weights=[0.25, 0.75], return_labels=True)
    assert x.shape == (100_000, 3)
    assert abs(lab.mean() - 0.75) < 0.01
    assert abs((x[lab == 0] - means[0]).std() - 0.5) < 0.01
    assert abs((x[lab == 1] - means[1]).std() - 2.0) < 0.03


@pytest.mark.parametrize("kwargs,msg", [
    (dict(means=[0.0, 1.0], std=0.1), "shape (k, d)"),
    (dict(means=[[0.0], [1.0]], std=-1.0), "positive"),
    (dict(means=[[0.0], [1.0]], std=[0.1, 0.2, 0.3]), "shape (2,)"),
    (dict(means=[[0.0], [np.nan]], std=0.1), "NaN"),
    (dict(means=[[0.0], [1.0]], std=0.1, weights=[0.5, 0.6]), "summing to 1"),
])
def test_sample_mixture_bad_input(kwargs, msg):
    with pytest.raises(ValueError, match=None) as err:
        data.sample_mixture(10, np.random.default_rng(0), **kwargs)
    assert msg in str(err.value)


def test_ring_and_grid_argument_checks():
    with pytest.raises(ValueError, match="positive integer"):
        data.ring_means(0)
    with pytest.raises(ValueError, match="radius"):
        data.ring_means(8, radius=0)
    with pytest.raises(ValueError, match="spacing"):
        data.grid_means(5, spacing=-2)
    with pytest.raises(ValueError, match="std"):
        data.sample_ring(10, np.random.default_rng(0), std=0)


# --------------------------------------------------------------------------- the metric


def _loop_reference(x, means, std, thr=3.0):
    """An independent, unvectorised version in the style of the PacGAN authors' evaluation code:
    standardised distance to every mode, nearest mode, count it if closer than thr."""
    counts = np.zeros(len(means), dtype=int)
    good = 0
    for row in x:
        dists = [math.sqrt(sum((a - b) ** 2 / std**2 for a, b in zip(row, m))) for m in means]
        j = int(np.argmin(dists))
        if dists[j] <= thr:
            counts[j] += 1
            good += 1
    p = counts[counts > 0] / counts.sum()
    rkl = float(np.sum(p * np.log(p * len(means)))) if counts.sum() else math.inf
    return int(np.count_nonzero(counts)), good / len(x), rkl, counts


def test_metric_agrees_with_a_loop_over_samples():
    rng = np.random.default_rng(2)
    for means, std in ((RING, 0.01), (GRID, 0.05)):
        x = np.concatenate([data.sample_mixture(300, rng, means[:5], std * 2.0),  # many beyond 3 std
                            rng.uniform(-5, 5, size=(100, 2))])
        r = metrics.mode_coverage(x, means, std)
        modes, hq, rkl, counts = _loop_reference(x, means, std)
        assert r.modes == modes and np.array_equal(r.counts, counts)
        assert r.high_quality == pytest.approx(hq, abs=1e-15)
        assert r.reverse_kl == pytest.approx(rkl, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("means,std,k", [(RING, 0.01, 8), (GRID, 0.05, 25)])
def test_true_mixture_finds_every_mode_and_the_2d_ceiling(means, std, k):
    rng = np.random.default_rng(3)
    n = 200_000
    r = metrics.mode_coverage(data.sample_mixture(n, rng, means, std), means, std)
    ceiling = 1 - math.exp(-4.5)
    assert r.modes == k
    assert abs(r.high_quality - ceiling) < 5 * math.sqrt(ceiling * (1 - ceiling) / n)
    assert r.reverse_kl < 1e-3
    # 2,500 samples, as in the papers: still every mode, about 98.9%
    r = metrics.mode_coverage(data.sample_mixture(2500, rng, means, std), means, std)
    assert r.modes == k and abs(r.high_quality - ceiling) < 0.01


@pytest.mark.parametrize("means,std,k", [(RING, 0.01, 8), (GRID, 0.05, 25)])
def test_samples_from_one_mode_give_one_mode_and_reverse_kl_log_k(means, std, k):
    x = data.sample_mixture(2500, np.random.default_rng(4), means[3:4], std)
    r = metrics.mode_coverage(x, means, std)
    assert r.modes == 1 and r.counts[3] == r.counts.sum()
    assert r.reverse_kl == pytest.approx(math.log(k), rel=1e-12)
    assert 0.97 < r.high_quality < 1.0


def test_points_between_three_and_six_std_are_low_quality_and_capture_nothing():
    std = 0.01
    r3 = 3 * std
    # mode 0 at (1, 0): samples at distances in (3 std, 6 std), in every direction
    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    dist = np.linspace(1.05 * r3, 1.95 * r3, 12)
    far = RING[0] + dist[:, None] * np.stack([np.cos(ang), np.sin(ang)], 1)
    r = metrics.mode_coverage(far, RING, std)
    assert r.modes == 0 and r.high_quality == 0.0 and r.reverse_kl == math.inf
    # a point between the ring's radius and twice the radius: far from every mode, nearest is mode 0
    idx, d = metrics.nearest_mode([[1.5, 0.0]], RING)
    assert idx[0] == 0 and d[0] == pytest.approx(0.5)
    assert metrics.mode_coverage([[1.5, 0.0]], RING, std).modes == 0
    # just inside 3 std counts; a box |dx|, |dy| < 3 std is not the same as the disc
    inside = RING[2] + 0.999 * r3 * np.array([[1, 0], [0, 1], [-1, 0]])
    corner = RING[2] + 0.9 * r3 * np.array([[1.0, 1.0]])  # |dx|, |dy| < 3 std but distance 3.8 std
    r = metrics.mode_coverage(np.concatenate([inside, corner]), RING, std)
    assert r.counts.tolist() == [0, 0, 3, 0, 0, 0, 0, 0] and r.high_quality == 0.75


def test_threshold_and_per_mode_std():
    means = np.array([[0.0, 0.0], [10.0, 0.0]])
    x = np.array([[0.25, 0.0], [10.25, 0.0]])
    assert metrics.mode_coverage(x, means, std=0.1).modes == 2   # both 2.5 std from their mode
    assert metrics.mode_coverage(x, means, std=0.1, threshold=2.4).modes == 0
    assert metrics.mode_coverage(x, means, std=0.1, threshold=2.6).modes == 2
    r = metrics.mode_coverage(x, means, std=[0.05, 0.1])  # mode 0: 5 std away, mode 1: 2.5 std
    assert r.counts.tolist() == [0, 1] and r.high_quality == 0.5


def test_any_dimension_and_torch_input():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    means = rng.normal(0, 10, size=(6, 5))
    x = data.sample_mixture(20_000, rng, means, 0.1)
    r = metrics.mode_coverage(torch.from_numpy(x).float(), means, 0.1)
    assert r.modes == 6
    assert abs(r.high_quality - metrics.high_quality_ceiling(5)) < 0.01


@pytest.mark.parametrize("samples,means,std,msg", [
    (np.zeros((10, 3)), RING, 0.01, "dimension 3 but the means have dimension 2"),
    (np.zeros(10), RING, 0.01, "shape (n, d)"),
    (np.zeros((0, 2)), RING, 0.01, "empty batch"),
    (np.array([[0.0, np.nan], [1.0, 0.0]]), RING, 0.01, "NaN or inf"),
    (np.array([[0.0, np.inf]]), RING, 0.01, "NaN or inf"),
    (np.zeros((4, 2)), RING[0], 0.01, "means must have shape (k, d)"),
    (np.zeros((4, 2)), RING, 0.0, "std must be positive"),
    (np.zeros((4, 2)), RING, np.full(3, 0.01), "one per mode"),
])
def test_bad_input_gets_a_clear_error(samples, means, std, msg):
    with pytest.raises(ValueError) as err:
        metrics.mode_coverage(samples, means, std)
    assert msg in str(err.value)
    with pytest.raises(ValueError, match="threshold"):
        metrics.mode_coverage(np.zeros((2, 2)), RING, 0.01, threshold=-1)


def test_blocked_distances_equal_one_shot(monkeypatch):
    x = data.sample_grid(2500, np.random.default_rng(6), std=0.3)
    one = metrics.nearest_mode(x, GRID)
    monkeypatch.setattr(metrics, "_BLOCK_ENTRIES", 1000)  # blocks of 20 rows
    blocked = metrics.nearest_mode(x, GRID)
    assert np.array_equal(one[0], blocked[0]) and np.array_equal(one[1], blocked[1])


def test_metric_is_vectorised_2500_by_25_is_fast():
    def python_calls(n):  # function calls (Python and C) that mode_coverage makes on n samples
        x = data.sample_grid(n, np.random.default_rng(7))
        calls = []
        sys.setprofile(lambda frame, event, arg: calls.append(event) if event in ("call", "c_call") else None)
        try:
            metrics.mode_coverage(x, GRID, 0.05)
        finally:
            sys.setprofile(None)
        return len(calls)

    # vectorised: its Python-level work does not grow with the samples (a loop over 2,500 would take ~100x longer)
    assert python_calls(2500) == python_calls(250)


def test_reverse_kl_uniform():
    rng = np.random.default_rng(8)
    c = rng.integers(0, 50, size=12).astype(float)
    c[[2, 5]] = 0
    p = c / c.sum()
    entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
    assert metrics.reverse_kl_uniform(c) == pytest.approx(np.log(12) - entropy, rel=1e-12)
    assert metrics.reverse_kl_uniform(np.ones(7)) == 0.0
    assert metrics.reverse_kl_uniform([0, 0, 9]) == pytest.approx(np.log(3))
    assert metrics.reverse_kl_uniform([0, 0, 0]) == math.inf
    with pytest.raises(ValueError, match="non-negative"):
        metrics.reverse_kl_uniform([1, -1])
    with pytest.raises(ValueError, match="1-D"):
        metrics.reverse_kl_uniform([])


def test_high_quality_ceiling_closed_forms_and_sampling():
    assert metrics.high_quality_ceiling(2) == pytest.approx(1 - math.exp(-4.5), rel=1e-14)
    assert metrics.high_quality_ceiling(1) == pytest.approx(math.erf(3 / math.sqrt(2)), rel=1e-14)
    x = 1.7**2 / 2
    assert metrics.high_quality_ceiling(4, 1.7) == pytest.approx(1 - math.exp(-x) * (1 + x), rel=1e-13)
    assert metrics.high_quality_ceiling(2, 0.0) == 0.0
    z = np.random.default_rng(9).normal(size=(400_000, 3))
    frac = np.mean(np.linalg.norm(z, axis=1) <= 3)
    assert abs(frac - metrics.high_quality_ceiling(3)) < 5 * math.sqrt(0.03 * 0.97 / 400_000)
    with pytest.raises(ValueError):
        metrics.high_quality_ceiling(0)


def test_result_type():
    r = metrics.mode_coverage(RING, RING, 0.01)
    assert (r.modes, r.high_quality, r.reverse_kl, r.k) == (8, 1.0, 0.0, 8)
    assert r.counts.dtype.kind == "i" and r.counts.tolist() == [1] * 8
    assert str(r) == "8/8 modes, 100.0% high quality, reverse KL 0.00"


# --------------------------------------------------------------------------- the 1-D wrapper is the same metric


def test_1d_mode_coverage_is_the_metric_and_matches_the_old_formula():
    rng = np.random.default_rng(10)
    centres, radius = [1.5, 6.5], 1.5
    x = np.concatenate([rng.normal(1.5, 0.5, 3000), rng.normal(6.5, 1.5, 1000), rng.uniform(-5, 15, 500)])
    got = data.mode_coverage(x, centres, radius)
    old = (np.abs(x[:, None] - np.array(centres)[None]) <= radius).mean(axis=0)  # the previous definition
    assert np.array_equal(got, old)   # identical when the windows do not overlap (chapter 03's case)
    r = metrics.mode_coverage(x[:, None], np.array(centres)[:, None], radius / 3)
    assert np.allclose(got, r.counts / x.size)
    assert np.array_equal(data.mode_coverage(x[:, None], centres, radius), got)
    with pytest.raises(ValueError, match="NaN"):
        data.mode_coverage([0.0, np.nan], centres, radius)
    with pytest.raises(ValueError, match="radius"):
        data.mode_coverage([0.0], centres, 0.0)


# --------------------------------------------------------------------------- minibatch standard deviation layer


def test_minibatch_stddev_matches_its_definition_and_sees_collapse():
    torch = pytest.importorskip("torch")
    from ganlib.models import MinibatchStdDev

    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64)
    out = MinibatchStdDev()(x)
    assert out.shape == (12, 6) and torch.equal(out[:, :5], x)
    want = np.sqrt(x.numpy().var(axis=0) + 1e-8).mean()
    assert np.allclose(out[:, 5].numpy(), want, rtol=1e-12)
    # groups of 4: three different values, one per consecutive group
    out4 = MinibatchStdDev(group_size=4)(x)
    for j in range(3):
        grp = x.numpy()[4 * j:4 * j + 4]
        assert np.allclose(out4[4 * j:4 * j + 4, 5].numpy(), np.sqrt(grp.var(axis=0) + 1e-8).mean())
    # images: std over the batch per (channel, pixel), averaged, appended as a channel
    im = torch.randn(6, 2, 3, 3, generator=g, dtype=torch.float64)
    out_im = MinibatchStdDev()(im)
    assert out_im.shape == (6, 3, 3, 3)
    assert np.allclose(out_im[:, 2].numpy(), np.sqrt(im.numpy().var(axis=0) + 1e-8).mean())
    # a collapsed batch shows up as a (near) zero feature; gradients flow to every sample
    collapsed = torch.ones(8, 2, dtype=torch.float64).requires_grad_(True)
    assert float(MinibatchStdDev()(collapsed)[0, 2]) < 1e-3
    spread = x.clone().requires_grad_(True)
    MinibatchStdDev()(spread)[:, 5].sum().backward()
    assert torch.all(spread.grad.abs().sum(dim=1) > 0)


def test_minibatch_stddev_bad_input():
    torch = pytest.importorskip("torch")
    from ganlib.models import MinibatchStdDev

    with pytest.raises(ValueError, match="multiple of group_size"):
        MinibatchStdDev(group_size=4)(torch.zeros(6, 2))
    with pytest.raises(ValueError, match="at least 2 samples"):
        MinibatchStdDev()(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="group_size"):
        MinibatchStdDev(group_size=1)


# --------------------------------------------------------------------------- plots


def test_plot_helpers_draw_what_they_say():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg", force=False)
    from ganlib import plot

    rng = np.random.default_rng(11)
    x = data.sample_ring(300, rng)
    ax = plot.plot_modes(x, RING, std=0.01)
    assert len(ax.patches) == 8 and len(ax.collections) == 2
    assert len(plot.plot_modes(x, RING).patches) == 0   # no std: no circles
    with pytest.raises(ValueError, match="2-D data"):
        plot.plot_modes(np.zeros((5, 3)), RING)
    fig = plot.plot_snapshots([(10, x), (20, x[:1] + np.zeros((50, 2)))], RING, 0.01, title="t")
    titles = [a.get_title() for a in fig.axes]
    r = metrics.mode_coverage(x, RING, 0.01)
    assert titles == [f"step 10\n8/8 modes, {100 * r.high_quality:.0f}% HQ", "step 20\n1/8 modes, 100% HQ"]
    with pytest.raises(ValueError, match="no snapshots"):
        plot.plot_snapshots({}, RING, 0.01)
    fig = plot.plot_results_grid({"a": {"ring": x}, "b": {"ring": x, "grid": data.sample_grid(100, rng)}},
                                 {"ring": RING, "grid": GRID}, {"ring": 0.01, "grid": 0.05})
    assert len(fig.axes) == 4 and not fig.axes[1].axison   # "a" has no grid run: that panel is blank
    assert fig.axes[0].get_ylabel() == "a" and fig.axes[2].get_ylabel() == "b"
