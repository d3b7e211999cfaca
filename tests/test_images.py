"""Image data: scaling round trip, the synthetic set, folders of images (good and bad), Batches."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ganlib import data


# ----------------------------------------------------------------------------- scaling

def test_scale_unscale_round_trip_is_exact_for_every_grey_level():
    u = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    x = data.scale_images(u)
    assert x.shape == (1, 1, 16, 16) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1
    assert torch.allclose(x.flatten(), torch.arange(256) / 127.5 - 1, atol=1e-7, rtol=0)
    assert torch.equal(data.unscale_images(x), u.unsqueeze(1))
    rgb = torch.randint(0, 256, (3, 3, 5, 5), dtype=torch.uint8)
    assert torch.equal(data.unscale_images(data.scale_images(rgb)), rgb)           # (N, C, H, W) kept
    assert torch.equal(data.scale_images(rgb.numpy()), data.scale_images(rgb))     # numpy accepted


def test_unscale_clips_and_rounds_to_nearest():
    x = torch.tensor([-3.0, -1.0, -1 + 0.4 / 127.5, -1 + 0.6 / 127.5, 0.999, 2.0])
    assert data.unscale_images(x).tolist() == [0, 0, 0, 1, 255, 255]


def test_scaling_rejects_the_wrong_input():
    with pytest.raises(TypeError, match="already scaled"):
        data.scale_images(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match=r"got shape \(4, 4\)"):
        data.scale_images(torch.zeros(4, 4, dtype=torch.uint8))
    with pytest.raises(TypeError, match="floats in"):
        data.unscale_images(torch.zeros(2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="NaN"):
        data.unscale_images(torch.tensor([0.0, float("nan")]))


# ----------------------------------------------------------------------------- synthetic images

def test_synthetic_images_are_deterministic_labelled_and_separable():
    x, y = data.synthetic_images(200, size=28, seed=3)
    x2, y2 = data.synthetic_images(200, size=28, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, data.synthetic_images(200, size=28, seed=4)[0])
    assert x.shape == (200, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert y.bincount().tolist() == [20] * 10 and -1 <= x.min() and x.max() <= 1
    # the class is visible: horizontal bars brighten one row band, vertical bars one column band
    rows, cols = x.mean(dim=(1, 3)), x.mean(dim=(1, 2))                    # (n, 28) each
    horizontal = rows.std(dim=1) > cols.std(dim=1)
    assert torch.equal(horizontal, y < 5)
    peak = torch.where(y < 5, rows.argmax(1), cols.argmax(1)).float()
    expected = torch.where(y < 5, y + 1, y - 4).float() * 28 / 6
    assert (peak - expected).abs().max() <= 2
    rgb, yc = data.synthetic_images(30, size=16, channels=3, seed=0)
    assert rgb.shape == (30, 3, 16, 16)
    with pytest.raises(ValueError, match="channels"):
        data.synthetic_images(4, channels=2)
    with pytest.raises(ValueError, match="size"):
        data.synthetic_images(4, size=4)


# ----------------------------------------------------------------------------- image folders

def test_image_folder_reads_converts_resizes_and_crops(tmp_path):
    Image.new("RGB", (20, 10), (255, 0, 0)).save(tmp_path / "a.png")
    im = Image.new("L", (10, 10), 0)
    im.putpixel((5, 5), 255)
    (tmp_path / "sub").mkdir()
    im.save(tmp_path / "sub" / "b.bmp")
    (tmp_path / "notes.txt").write_text("not an image")                 # ignored: not an image extension
    with pytest.warns(UserWarning, match=r"modes L converted to RGB; 2 different sizes resized and cropped to 10x10"):
        x = data.image_folder(tmp_path, size=10, channels=3)
    assert x.shape == (2, 3, 10, 10) and x.dtype == torch.float32
    assert x[0, 0].eq(1).all() and x[0, 1:].eq(-1).all()                  # red, cropped from 20x10
    assert float(x[1, :, 5, 5].min()) == 1.0 and float(x[1, :, 0, 0].max()) == -1.0
    with pytest.warns(UserWarning, match="modes RGB converted to L"):
        g = data.image_folder(tmp_path, size=5, channels=1)
    assert g.shape == (2, 1, 5, 5)
    # red in ITU-R 601 luma: L = 0.299 R -> round(76.2) = 76
    assert data.unscale_images(g)[0, 0, 2, 2] == 76


def test_image_folder_crops_the_centre_of_a_non_square_image(tmp_path):
    # thirds red | green | blue across a wide image, and down a tall one: the centre crop is all green,
    # a crop from the top-left corner would be all red
    wide = np.zeros((10, 30, 3), dtype=np.uint8)
    wide[:, :10, 0] = wide[:, 10:20, 1] = wide[:, 20:, 2] = 255
    for name, pixels in (("wide", wide), ("tall", wide.transpose(1, 0, 2).copy())):
        (tmp_path / name).mkdir()
        Image.fromarray(pixels).save(tmp_path / name / "thirds.png")
        x = data.image_folder(tmp_path / name, size=10, channels=3)
        assert x.shape == (1, 3, 10, 10), name
        assert x[0, 1].eq(1).all() and x[0, 0].eq(-1).all() and x[0, 2].eq(-1).all(), name


def test_same_mode_same_size_folder_gives_no_warning(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = data.image_folder(tmp_path, size=8, channels=1)
    assert data.unscale_images(x)[:, 0, 0, 0].tolist() == [0, 40, 80]


def test_bad_folders_give_one_clear_error(tmp_path):
    with pytest.raises(data.DataNotFoundError, match="does not exist"):
        data.image_folder(tmp_path / "nope")
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(data.DataNotFoundError, match=r"no images \(.png"):
        data.image_folder(tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(data.DataCorruptError, match=r"2 of 3 files .*broken.png .*empty.jpg"):
        data.image_folder(tmp_path, size=8)
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable files .*broken.png"):
        x = data.image_folder(tmp_path, size=8, skip_bad=True)
    assert x.shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        data.image_folder(tmp_path, channels=4)


def test_palette_and_alpha_images_convert(tmp_path):
    p = Image.new("P", (6, 6), 0)
    p.putpalette([0, 0, 255] + [0] * 765)
    p.save(tmp_path / "p.png")
    Image.new("RGBA", (6, 6), (0, 0, 255, 128)).save(tmp_path / "q.png")
    with pytest.warns(UserWarning, match="modes P/RGBA converted to RGB"):
        x = data.image_folder(tmp_path, size=6)
    assert torch.equal(x[0], x[1]) and x[0, 2].eq(1).all() and x[0, :2].eq(-1).all()


# ----------------------------------------------------------------------------- Batches

def test_batches_visit_every_sample_once_per_epoch_in_a_new_order():
    x = torch.arange(100).float()
    b = data.Batches(x, 10, seed=1)
    assert len(b) == b.batches_per_epoch == 10
    epoch0 = torch.cat([next(b) for _ in range(10)])
    epoch1 = torch.cat([next(b) for _ in range(10)])
    assert sorted(epoch0.tolist()) == sorted(epoch1.tolist()) == x.tolist()
    assert not torch.equal(epoch0, epoch1) and b.epoch == 1
    again = data.Batches(x, 10, seed=1)
    assert torch.equal(torch.cat([next(again) for _ in range(10)]), epoch0)    # same seed, same stream
    other = data.Batches(x, 10, seed=2)
    assert not torch.equal(torch.cat([next(other) for _ in range(10)]), epoch0)


def test_batches_drop_last_and_labels():
    x, y = torch.arange(10.0) * 10, torch.arange(10)
    b = data.Batches(x, 4, labels=y, seed=0)
    sizes, seen = [], []
    for _ in range(4):
        xb, yb = next(b)
        assert torch.equal(xb, yb.float() * 10)                             # pairs stay together
        sizes.append(len(xb)); seen.append(yb)
    assert sizes == [4, 4, 4, 4] and b.epoch == 1 and b.batches_per_epoch == 2
    assert len(set(torch.cat(seen[:2]).tolist())) == 8                       # two samples dropped in epoch 0
    k = data.Batches(x, 4, seed=0, drop_last=False)
    assert k.batches_per_epoch == 3
    first = [next(k) for _ in range(3)]
    assert [len(t) for t in first] == [4, 4, 2]
    assert sorted(torch.cat(first).tolist()) == x.tolist()
    assert len(next(k)) == 4 and k.epoch == 1
    with pytest.raises(ValueError, match="exceeds the 10 samples"):
        data.Batches(x, 11)
    with pytest.raises(ValueError, match="labels of shape"):
        data.Batches(x, 2, labels=torch.arange(9))
    with pytest.raises(ValueError, match="batch_size"):
        data.Batches(x, 0)


@pytest.mark.parametrize("n_batches", [3, 7, 12])   # inside an epoch, at an epoch boundary, across several
def test_batches_resume_exactly(n_batches):
    x, y = data.synthetic_images(35, size=8, seed=0)
    one = data.Batches(x, 5, labels=y, seed=7)
    straight = [next(one) for _ in range(2 * n_batches)]
    first = data.Batches(x, 5, labels=y, seed=7)
    part1 = [next(first) for _ in range(n_batches)]
    state = first.state_dict()
    resumed = data.Batches(x, 5, labels=y, seed=0)                          # the state carries the seed
    resumed.load_state_dict(state)
    part2 = [next(resumed) for _ in range(n_batches)]
    for (a, ay), (b, by) in zip(straight, part1 + part2):
        assert torch.equal(a, b) and torch.equal(ay, by)
    assert resumed.state_dict() == one.state_dict()


def test_batches_state_from_other_data_is_refused():
    b = data.Batches(torch.zeros(20, 2), 4)
    with pytest.raises(ValueError, match="num_samples=30"):
        b.load_state_dict(data.Batches(torch.zeros(30, 2), 4).state_dict())
    with pytest.raises(ValueError, match="batch_size=5"):
        b.load_state_dict(data.Batches(torch.zeros(20, 2), 5).state_dict())
    with pytest.raises(ValueError, match="lacks"):
        b.load_state_dict({"num_samples": 20})


def test_batches_keep_data_on_the_requested_device():
    b = data.Batches(torch.zeros(8, 3, dtype=torch.float64), 4, device="cpu")
    assert next(b).device.type == "cpu" and next(b).dtype == torch.float64
    if torch.cuda.is_available():  # pragma: no cover - exercised on GPU machines
        g = data.Batches(torch.zeros(8, 3), 4, labels=torch.arange(8), device="cuda")
        xb, yb = next(g)
        assert xb.is_cuda and yb.is_cuda


# ----------------------------------------------------------------------------- colour data kept as uint8

def test_image_folder_states_its_memory_first_and_can_keep_uint8(tmp_path, capsys):
    rgb = np.random.default_rng(0).integers(0, 256, (3, 12, 12, 3), dtype=np.uint8)
    for i, a in enumerate(rgb):
        Image.fromarray(a).save(tmp_path / f"{i}.png")
    u = data.image_folder(tmp_path, size=12, scaled=False, verbose=True)
    err = capsys.readouterr().err
    # 3 images x 3 x 12 x 12 bytes = 1,296 bytes, announced before the reading
    assert f"image_folder: 3 images in {tmp_path}: 1.3 kB in memory as uint8 (3x12x12 bytes each)" in err
    assert "float32" not in err
    assert u.dtype == torch.uint8 and u.shape == (3, 3, 12, 12)
    assert torch.equal(u, torch.from_numpy(rgb).permute(0, 3, 1, 2))           # the pixels, untouched
    x = data.image_folder(tmp_path, size=12, verbose=True)
    assert "then 5.2 kB as float32 (scaled=False keeps uint8)" in capsys.readouterr().err
    assert torch.equal(x, data.scale_images(u))                                 # scaled = uint8, then scale_images
    data.image_folder(tmp_path, size=12, verbose=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("n,expected", [(999, "999 bytes"), (1_296, "1.3 kB"), (153_600_000, "154 MB"),
                                        (202_599 * 3 * 64 * 64, "2.5 GB"), (4 * 202_599 * 3 * 64 * 64, "10.0 GB")])
def test_memory_is_stated_in_powers_of_1000(n, expected):
    from ganlib.images import _format_bytes

    assert _format_bytes(n) == expected


def test_batches_scale_uint8_one_batch_at_a_time_and_resume_the_same():
    u = torch.randint(0, 256, (30, 3, 4, 4), dtype=torch.uint8)
    y = torch.arange(30)
    small = data.Batches(u, 6, labels=y, seed=3, scale=True)
    big = data.Batches(data.scale_images(u), 6, labels=y, seed=3)
    assert small.x.dtype == torch.uint8 and small.x.element_size() * 4 == big.x.element_size()
    for _ in range(12):                                       # two epochs and a half: the same batches, as floats
        (a, ay), (b, by) = next(small), next(big)
        assert a.dtype == torch.float32 and torch.equal(a, b) and torch.equal(ay, by)
    resumed = data.Batches(u, 6, labels=y, seed=0, scale=True)
    resumed.load_state_dict(small.state_dict())
    assert torch.equal(next(resumed)[0], next(big)[0])
    with pytest.raises(TypeError, match="scale=True serves uint8 pixels"):
        data.Batches(torch.zeros(4, 2), 2, scale=True)
