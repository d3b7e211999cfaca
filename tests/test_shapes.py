"""Coloured shapes: the generator, the exact decoder (every attribute back, every kind of bad image
refused) and the mode metrics against counts known by construction."""

import math

import numpy as np
import pytest
import torch

from ganlib import shapes
from ganlib.images import scale_images
from ganlib.metrics import reverse_kl_uniform


def every_box(size):
    """Every (side, left, top) make_shapes can draw at this image size."""
    smin, smax, m = shapes.shape_sizes(size)
    return np.array([(s, l, t) for s in range(smin, smax + 1) for l in range(m, size - m - s + 1)
                     for t in range(m, size - m - s + 1)])


def paint(masks, colours, size=None):
    """Images (n, 3, H, W) uint8: palette colour where the mask is set, the background grey elsewhere."""
    return np.where(masks[:, None], shapes.PALETTE[np.asarray(colours)][:, :, None, None],
                    np.uint8(shapes.BACKGROUND)).astype(np.uint8)


# ----------------------------------------------------------------------------- drawing

def inside_by_hand(shape, left, top, side, row, col):
    """The geometry of render_masks, one pixel centre at a time, in exact fractions."""
    from fractions import Fraction as F

    x, y, s = F(2 * col + 1, 2) - left, F(2 * row + 1, 2) - top, F(side)
    if shape == 0:
        return (x - s / 2) ** 2 + (y - s / 2) ** 2 <= (s / 2) ** 2
    if shape == 1:
        return 0 <= x < s and 0 <= y < s
    return 0 <= y <= s and abs(x - s / 2) <= y / 2


@pytest.mark.parametrize("shape,left,top,side", [(0, 2, 3, 12), (0, 5, 1, 13), (1, 2, 2, 20), (2, 3, 4, 12),
                                                 (2, 1, 2, 15), (2, -3, 20, 16)])
def test_masks_match_the_geometry_pixel_by_pixel(shape, left, top, side):
    mask = shapes.render_masks([shape], [left], [top], [side], 32)[0]
    by_hand = np.array([[inside_by_hand(shape, left, top, side, r, c) for c in range(32)] for r in range(32)])
    assert np.array_equal(mask, by_hand)


def test_mask_areas_approach_the_continuous_shapes():
    side = np.array([40])
    area = [shapes.render_masks([k], [4], [4], side, 48)[0].sum() / 40 ** 2 for k in range(3)]
    assert abs(area[0] - math.pi / 4) < 0.01 and area[1] == 1.0 and abs(area[2] - 0.5) < 0.02


def test_make_shapes_is_seeded_balanced_and_in_the_stated_ranges():
    x, y, a = shapes.make_shapes(1000, seed=3, attributes=True)
    x2, y2 = shapes.make_shapes(1000, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2) and not torch.equal(x, shapes.make_shapes(1000, seed=4)[0])
    assert x.shape == (1000, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert sorted(set(y.bincount().tolist())) == [41, 42]                   # 1000 = 24 x 41 + 16
    assert np.array_equal(a["mode"], y.numpy()) and np.array_equal(a["mode"], 8 * a["shape"] + a["colour"])
    smin, smax, m = shapes.shape_sizes(32)
    assert (smin, smax, m) == (12, 20, 2)
    assert a["side"].min() == smin and a["side"].max() == smax
    assert a["left"].min() == m and (a["left"] + a["side"]).max() == 32 - m
    assert (a["top"] + a["side"]).max() == 32 - m
    # pixels: background grey or the image's palette colour, nothing else
    colour = shapes.PALETTE[a["colour"]][:, :, None, None]
    assert bool(np.all((x.numpy() == shapes.BACKGROUND) | (x.numpy() == colour)))
    sub_x, sub_y = shapes.make_shapes(103, seed=0, modes=[20, 0, 5, 13, 9])
    assert sorted(set(sub_y.tolist())) == [0, 5, 9, 13, 20]
    assert sorted(sub_y.bincount(minlength=24)[[0, 5, 9, 13, 20]].tolist()) == [20, 20, 21, 21, 21]
    assert shapes.make_shapes(10, size=64)[0].shape == (10, 3, 64, 64)


@pytest.mark.parametrize("bad", [[24], [-1], [], [1.5]])
def test_make_shapes_refuses_unknown_modes(bad):
    with pytest.raises(ValueError, match="modes must be"):
        shapes.make_shapes(4, modes=bad)


def test_names_and_palette():
    assert shapes.NUM_MODES == 24 and len(shapes.SHAPES) * len(shapes.COLOURS) == 24
    assert shapes.PALETTE[1].tolist() == [255, 0, 0] and shapes.PALETTE[6].tolist() == [0, 255, 255]
    assert shapes.mode_name(8 * 2 + 3) == "yellow triangle"
    # every colour is 127 or 128 from the grey in its farthest channel, 255 from every other colour
    assert set(np.abs(shapes.PALETTE.astype(int) - shapes.BACKGROUND).max(1).tolist()) == {127, 128}
    d = np.abs(shapes.PALETTE[:, None].astype(int) - shapes.PALETTE[None].astype(int)).max(2)
    assert d[~np.eye(8, dtype=bool)].min() == 255
    with pytest.raises(ValueError):
        shapes.mode_name(24)


# ----------------------------------------------------------------------------- the decoder on the data

@pytest.mark.parametrize("size", [28, 32, 64])
def test_the_decoder_reads_back_every_shape_colour_side_and_position(size):
    box = every_box(size)
    index = np.arange(len(box))
    # 28 and 32 px: every shape in every box; 64 px (11,033 boxes): every box, the shapes taking turns
    for kinds in ([np.full(len(box), k) for k in range(3)] if size < 64 else [index % 3]):
        colours = index % 8                                                 # every colour at every size
        imgs = paint(shapes.render_masks(kinds, box[:, 1], box[:, 2], box[:, 0], size), colours)
        d = shapes.decode_shapes(imgs)
        assert d.rejected() == {}
        assert np.array_equal(d.shape, kinds) and np.array_equal(d.colour, colours)
        assert np.array_equal(d.mode, 8 * kinds + colours) and np.all(d.iou == 1.0)
        assert np.array_equal(d.side, box[:, 0]) and np.array_equal(d.left, box[:, 1])
        assert np.array_equal(d.top, box[:, 2])


def test_the_decoder_reads_generated_images_as_bytes_floats_and_tensors():
    x, y, a = shapes.make_shapes(2400, seed=11, attributes=True)
    d = shapes.decode_shapes(x)
    assert d.ok.all() and np.array_equal(d.mode, y.numpy())
    for key in ("shape", "colour", "left", "top", "side"):
        assert np.array_equal(getattr(d, key), a[key])
    for other in (x.numpy(), scale_images(x), scale_images(x).numpy().astype(np.float64),
                  scale_images(x) + 0.003):                                 # a tanh output a little off the grid
        assert np.array_equal(shapes.decode_shapes(other).mode, y.numpy())


# ----------------------------------------------------------------------------- what is refused

def test_noise_is_refused():
    rng = np.random.default_rng(0)
    uniform = rng.integers(0, 256, (200, 3, 32, 32), dtype=np.uint8)
    gauss = np.clip(np.round(128 + 60 * rng.normal(size=(200, 3, 32, 32))), 0, 255).astype(np.uint8)
    sparse = np.full((200, 3, 32, 32), 128, np.uint8)
    spots = rng.random((200, 32, 32)) < 0.1                                  # 10 % of the pixels white
    sparse[np.broadcast_to(spots[:, None], sparse.shape)] = 255
    for imgs in (uniform, gauss, sparse):
        assert not shapes.decode_shapes(imgs).ok.any()
    blank = shapes.decode_shapes(np.full((2, 3, 32, 32), 128, np.uint8))
    assert blank.reason.tolist() == ["no shape", "no shape"] and blank.side.tolist() == [-1, -1]


def test_small_noise_is_tolerated_and_large_noise_is_not():
    x, y = shapes.make_shapes(480, seed=2)
    rng = np.random.default_rng(0)
    for sigma, ok in ((5, True), (10, True), (20, False)):
        noisy = np.clip(np.round(x.numpy() + sigma * rng.normal(size=x.shape)), 0, 255).astype(np.uint8)
        d = shapes.decode_shapes(noisy)
        assert bool(d.ok.all()) is ok and not (d.ok & (d.mode != y.numpy())).any()


@pytest.mark.parametrize("w", [0.3, 0.4, 0.5, 0.6, 0.7])
def test_blends_of_two_colours_are_refused(w):
    x, _, a = shapes.make_shapes(2000, seed=5, attributes=True)
    j = np.random.default_rng(1).permutation(2000)
    differ = a["colour"] != a["colour"][j]
    blend = np.round(w * x.numpy().astype(float) + (1 - w) * x.numpy()[j]).astype(np.uint8)[differ]
    assert differ.sum() > 1500 and not shapes.decode_shapes(blend).ok.any()


def test_a_faint_blend_is_read_as_its_main_image_and_a_stricter_tolerance_refuses_it():
    x, y = shapes.make_shapes(200, seed=5)
    j = np.random.default_rng(1).permutation(200)
    faint = np.round(0.9 * x.numpy().astype(float) + 0.1 * x.numpy()[j]).astype(np.uint8)
    assert np.array_equal(shapes.decode_shapes(faint).mode, y.numpy())
    strict = shapes.Tolerance(colour=8, background=8)
    assert not shapes.decode_shapes(faint[y.numpy() != y.numpy()[j]], strict).ok.any()
    assert shapes.decode_shapes(x, strict).ok.all()                           # the data passes any tolerance


def test_half_and_half_mixes_are_refused():
    # a red square whose right half is a blue circle's right half: both shapes cut by the middle column
    left = paint(shapes.render_masks([1], [8], [6], [16], 32), [1])
    right = paint(shapes.render_masks([0], [9], [8], [14], 32), [4])
    mix = left.copy()
    mix[..., 16:] = right[..., 16:]
    same_colour = paint(shapes.render_masks([1], [8], [6], [16], 32), [1])
    same_colour[..., 16:] = paint(shapes.render_masks([1], [8], [6], [16], 32), [2])[..., 16:]   # red | green
    d = shapes.decode_shapes(np.concatenate([mix, same_colour]))
    assert d.reason.tolist() == ["shape", "colour"]


def test_two_shapes_are_refused():
    a = shapes.render_masks([0, 1, 2], [2, 2, 2], [2, 2, 2], [12, 12, 12], 32)
    b = shapes.render_masks([1, 2, 0], [18, 17, 16], [17, 2, 16], [12, 13, 14], 32)
    two = paint(a | b, [1, 3, 7])
    d = shapes.decode_shapes(two)
    assert not d.ok.any() and set(d.reason) <= {"shape", "background"}


def test_off_colours_and_wrong_sizes_are_refused_with_their_reason():
    mask = shapes.render_masks([1], [8], [8], [14], 32)
    orange = np.where(mask[:, None], np.array([255, 128, 0], np.uint8)[:, None, None], np.uint8(128))
    dim_red = np.where(mask[:, None], np.array([190, 0, 0], np.uint8)[:, None, None], np.uint8(128))
    big = paint(shapes.render_masks([1], [2], [2], [26], 32), [1])              # 26 > 20 + 2
    tiny = paint(shapes.render_masks([1], [5], [5], [9], 32), [1])              # 9 < 12 - 2
    diamond = np.full((1, 3, 32, 32), 128, np.uint8)
    r, c = np.mgrid[:32, :32]
    diamond[0, :, np.abs(r - 15.5) + np.abs(c - 15.5) <= 8] = 255              # a square turned by 45 degrees
    d = shapes.decode_shapes(np.concatenate([orange, dim_red, big, tiny, diamond]).astype(np.uint8))
    assert d.reason.tolist() == ["colour", "colour", "size", "size", "shape"]
    assert d.mode.tolist() == [-1] * 5
    near = np.where(mask[:, None], np.array([215, 40, 0], np.uint8)[:, None, None], np.uint8(128))
    assert shapes.decode_shapes(near).mode.tolist() == [8 + 1]                 # within 48 of red: a red square


def test_a_soft_edge_is_tolerated():
    """A generator blurs edges: the colour is read inside the shape, one pixel in from its edge."""
    mask = shapes.render_masks([1], [10], [10], [12], 32)
    img = paint(mask, [1])
    img[0, :, 10:22, 10:22][:, [0, -1], :] = np.array([200, 60, 60])[:, None, None]   # the edge ring: foreground,
    img[0, :, 10:22, 10:22][:, :, [0, -1]] = np.array([200, 60, 60])[:, None, None]   # 60 from red: off colour
    assert np.count_nonzero((img[0] == [[[200]], [[60]], [[60]]]).all(0)) == 44        # 31 % of the square
    assert shapes.decode_shapes(img).mode.tolist() == [8 + 1]


def test_a_shape_with_a_patch_of_another_colour_is_refused_though_its_mean_is_close():
    mask = shapes.render_masks([1], [6], [6], [20], 32)
    img = paint(mask, [1])                                                  # a red square, 20 x 20
    img[0, 1, 7:10, 7:25] = 255                                             # 3 of its 18 inner rows yellow
    mean = img[0, :, 7:25, 7:25].reshape(3, -1).mean(1)
    assert np.abs(mean - [255, 0, 0]).max() < 48                              # the mean alone would pass
    assert shapes.decode_shapes(img).reason.tolist() == ["colour"]           # 17 % off colour: more than 10 %


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"colour images \(N, 3, H, H\)"):
        shapes.decode_shapes(np.zeros((2, 1, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        shapes.decode_shapes(np.full((1, 3, 32, 32), np.nan, np.float32))
    with pytest.raises(TypeError, match="uint8 bytes or floats"):
        shapes.decode_shapes(np.zeros((1, 3, 32, 32), np.int32))
    with pytest.raises(ValueError, match="size must be an integer >= 16"):
        shapes.decode_shapes(np.zeros((1, 3, 8, 8), np.uint8))


# ----------------------------------------------------------------------------- the metrics

def test_the_data_itself_covers_every_mode_at_full_quality():
    x, y = shapes.make_shapes(2400, seed=0)
    r = shapes.shape_coverage(x)
    assert r.modes == 24 and r.high_quality == 1.0 and r.reverse_kl == 0.0
    assert r.counts.tolist() == [100] * 24


def test_planted_subsets_give_the_counts_they_were_built_with():
    planted = [0, 5, 9, 13, 20]
    x, y = shapes.make_shapes(1003, seed=4, modes=planted)
    noise = np.random.default_rng(0).integers(0, 256, (250, 3, 32, 32), dtype=np.uint8)
    r = shapes.shape_coverage(np.concatenate([x.numpy(), noise]))
    assert r.modes == 5 and np.flatnonzero(r.counts).tolist() == planted
    assert r.counts.tolist() == y.bincount(minlength=24).tolist()
    assert r.high_quality == 1003 / 1253
    p = r.counts[r.counts > 0] / 1003
    assert math.isclose(r.reverse_kl, float(np.sum(p * np.log(24 * p))), rel_tol=1e-12)
    assert abs(r.reverse_kl - math.log(24 / 5)) < 1e-4                          # nearly balanced over 5 of 24
    one = shapes.shape_coverage(shapes.make_shapes(50, seed=0, modes=[7])[0])
    assert one.modes == 1 and math.isclose(one.reverse_kl, math.log(24)) and str(one).startswith("1/24 modes")


def test_an_unbalanced_generator_has_the_reverse_kl_of_its_histogram():
    parts = [shapes.make_shapes(n, seed=i, modes=[m])[0] for i, (m, n) in enumerate([(0, 300), (11, 100), (23, 50)])]
    r = shapes.shape_coverage(torch.cat(parts))
    assert r.counts[[0, 11, 23]].tolist() == [300, 100, 50] and r.modes == 3
    assert math.isclose(r.reverse_kl, reverse_kl_uniform(r.counts), rel_tol=0)
    p = np.array([300, 100, 50]) / 450
    assert math.isclose(r.reverse_kl, math.log(24) + float(np.sum(p * np.log(p))), rel_tol=1e-12)


# the command line (evaluate needs the shapes classifier): tests/test_shapes_metrics.py
