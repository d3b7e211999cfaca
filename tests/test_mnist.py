"""MNIST: the IDX parser on the real files and on damaged ones, where files come from, and the
downloader against a local HTTP server (no test touches the network)."""

import gzip
import hashlib
import http.server
import os
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ganlib import images as data  # the MNIST reader lives in ganlib.images (ganlib.data re-exports it)

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

needs_mnist = pytest.mark.skipif(
    not os.environ.get(data.DATA_ENV),
    reason=f"set {data.DATA_ENV} to a folder with the four MNIST files to run the tests on real data")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, tmp_path):
    """Every test gets an empty private cache and mirrors that cannot be reached."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(data.MIRRORS_ENV, "http://127.0.0.1:9/")   # discard port: connection refused


# ----------------------------------------------------------------------------- real files

@needs_mnist
def test_real_files_parse_with_the_published_shapes_and_label_counts():
    folder = data.mnist_dir(download=False)
    images = data.read_idx(folder / "train-images-idx3-ubyte.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    x, y = data.load_mnist("train", download=False)
    assert x.shape == (60000, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.equal(x, torch.from_numpy(images))
    assert y.bincount().tolist() == TRAIN_COUNTS
    xt, yt = data.load_mnist("test", download=False)
    assert xt.shape == (10000, 28, 28) and yt.bincount().tolist() == TEST_COUNTS
    # the header by hand: magic, count, rows, cols, big-endian
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz", "rb") as f:
        assert struct.unpack(">iiii", f.read(16)) == (2051, 10000, 28, 28)
        first = np.frombuffer(f.read(784), dtype=np.uint8).reshape(28, 28)
    assert torch.equal(xt[0], torch.from_numpy(first.copy()))


@needs_mnist
def test_mnist_images_scale_and_resize():
    x, y = data.mnist_images("test")
    raw, _ = data.load_mnist("test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(data.unscale_images(x)[:, 0], raw)
    x32, _ = data.mnist_images("test", size=32)
    assert x32.shape == (10000, 1, 32, 32)
    # one bilinear resize of the uint8 digits, rounded to uint8 (what torchvision's Resize does on uint8 tensors)
    ref = torch.nn.functional.interpolate(raw[:5, None].float(), size=(32, 32), mode="bilinear",
                                          align_corners=False, antialias=False).round()
    assert torch.equal(data.unscale_images(x32[:5]).float(), ref)
    # the digits keep their mass: mean intensity changes by well under one grey level
    assert abs(float(data.unscale_images(x32).float().mean() - raw.float().mean())) < 1.0
    with pytest.raises(ValueError, match="28, 32 or 64"):
        data.mnist_images("test", size=48)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.load_mnist("valid")


@needs_mnist
def test_explicit_root_beats_the_environment(tmp_path, monkeypatch):
    real = data.mnist_dir(download=False)
    assert real == Path(os.environ[data.DATA_ENV]) or real == Path(os.environ[data.DATA_ENV]) / "mnist"
    with pytest.raises(data.DataNotFoundError, match=str(tmp_path / "elsewhere")):
        data.mnist_dir(tmp_path / "elsewhere", download=False)
    # $GANLIB_DATA may also name the parent of an mnist/ folder
    (tmp_path / "parent" / "mnist").mkdir(parents=True)
    for name in data.MNIST_FILES:
        (tmp_path / "parent" / "mnist" / name).symlink_to(real / name)
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "parent"))
    assert data.mnist_dir(download=False) == tmp_path / "parent" / "mnist"


# ----------------------------------------------------------------------------- damaged IDX files

def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = magic if magic is not None else (2051 if array.ndim == 3 else 2049)
    return struct.pack(">i" + "i" * array.ndim, magic, *array.shape) + array.astype(np.uint8).tobytes()


def test_read_idx_round_trip_plain_and_gzip(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3)).astype(np.uint8)
    (tmp_path / "a").write_bytes(idx_bytes(imgs))
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(imgs)))
    assert np.array_equal(data.read_idx(tmp_path / "a"), imgs)
    assert np.array_equal(data.read_idx(tmp_path / "a.gz"), imgs)


@pytest.mark.parametrize("magic", [2053, 0x08030000, 2050, 0, 0x00000c03])
def test_wrong_magic_is_rejected_with_the_file_name(tmp_path, magic):
    p = tmp_path / "weird-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.zeros((2, 3, 3)), magic=magic)))
    with pytest.raises(data.DataCorruptError, match=rf"weird-idx3-ubyte.gz: magic number {magic} .*expected 2051"):
        data.read_idx(p)


@pytest.mark.parametrize("cut,match", [(-1, "truncated: 17 data bytes, the header \\(2, 3, 3\\) needs 18"),
                                       (10, "truncated header"), (2, "too short")])
def test_truncated_idx_is_rejected(tmp_path, cut, match):
    p = tmp_path / "t.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.ones((2, 3, 3)))[:cut]))
    with pytest.raises(data.DataCorruptError, match=match):
        data.read_idx(p)


def test_extra_bytes_and_a_truncated_gzip_stream_are_rejected(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(idx_bytes(np.ones(4)) + b"\0")
    with pytest.raises(data.DataCorruptError, match="1 bytes after the data"):
        data.read_idx(p)
    whole = gzip.compress(idx_bytes(np.arange(200).reshape(200)))
    p.write_bytes(whole[: len(whole) // 2])                      # the gzip stream itself is cut
    with pytest.raises(data.DataCorruptError, match="cannot decompress"):
        data.read_idx(p)
    with pytest.raises(FileNotFoundError):
        data.read_idx(tmp_path / "absent")


# ----------------------------------------------------------------------------- fake MNIST, local server

@pytest.fixture
def fake_mnist(monkeypatch):
    """Four small valid IDX gz files standing in for MNIST; MNIST_FILES patched with their md5s."""
    rng = np.random.default_rng(1)
    blobs = {}
    for split, n in (("train", 30), ("t10k", 10)):
        blobs[f"{split}-images-idx3-ubyte.gz"] = gzip.compress(
            idx_bytes(rng.integers(0, 256, (n, 28, 28))), mtime=0)
        blobs[f"{split}-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(np.arange(n) % 10), mtime=0)
    files = {k: (hashlib.md5(v).hexdigest(), len(v), "fake") for k, v in blobs.items()}
    monkeypatch.setattr(data, "MNIST_FILES", files)
    return blobs


class _Handler(http.server.BaseHTTPRequestHandler):
    blobs: dict = {}
    hits: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        kind, name = self.path.strip("/").split("/", 1)
        self.hits.append((kind, name))
        blob = self.blobs.get(name)
        if kind == "missing" or blob is None:
            self.send_error(404)
            return
        if kind == "corrupt":                     # right length, wrong bytes
            blob = bytes(reversed(blob))
        self.send_response(200)
        self.send_header("Content-Length", str(len(blob)))
        self.end_headers()
        if kind == "truncated":                   # announce the whole file, send half, hang up
            self.wfile.write(blob[: len(blob) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if kind == "stall":                       # send half, then go silent past the client's timeout
            self.wfile.write(blob[: len(blob) // 2])
            self.wfile.flush()
            time.sleep(1.5)
            return
        self.wfile.write(blob)


@pytest.fixture
def server(fake_mnist):
    _Handler.blobs, _Handler.hits = fake_mnist, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler.hits
    httpd.shutdown()
    httpd.server_close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in data.MNIST_FILES)


def test_404_mirror_then_a_good_one(server, monkeypatch, tmp_path, fake_mnist):
    url, hits = server
    monkeypatch.setenv(data.MIRRORS_ENV, f"{url}/missing/, {url}/good")
    folder = data.mnist_dir(tmp_path / "d", timeout=5)
    assert folder == tmp_path / "d"
    for name, blob in fake_mnist.items():
        assert (folder / name).read_bytes() == blob
    assert [k for k, _ in hits] == ["missing", "good"] * 4          # a 404 is not retried
    assert leftovers(folder) == []
    x, y = data.load_mnist("train", root=folder)
    assert x.shape == (30, 28, 28) and y.tolist() == [i % 10 for i in range(30)]
    hits.clear()
    data.mnist_dir(folder)                                          # cached: no request at all
    assert hits == []


def test_default_location_is_the_user_cache(server, monkeypatch, tmp_path):
    url, _ = server
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setenv(data.MIRRORS_ENV, f"{url}/good/")
    assert data.cache_dir() == tmp_path / "cache" / "ganlib"        # $XDG_CACHE_HOME honoured
    assert data.mnist_dir(timeout=5) == tmp_path / "cache" / "ganlib" / "mnist"
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "env"))        # $GANLIB_DATA comes before the cache
    assert data.mnist_dir(timeout=5) == tmp_path / "env"
    assert sorted(os.listdir(tmp_path / "env")) == sorted(data.MNIST_FILES)


def test_corrupt_mirror_is_skipped_and_never_saved(server, monkeypatch, tmp_path, fake_mnist):
    url, hits = server
    monkeypatch.setenv(data.MIRRORS_ENV, f"{url}/corrupt/,{url}/good/")
    folder = data.mnist_dir(tmp_path / "d", timeout=5)
    assert all((folder / n).read_bytes() == b for n, b in fake_mnist.items())
    assert [k for k, _ in hits] == ["corrupt", "good"] * 4
    monkeypatch.setenv(data.MIRRORS_ENV, f"{url}/corrupt/")
    with pytest.raises(data.DataNotFoundError, match="does not match the published"):
        data.mnist_dir(tmp_path / "e", timeout=5)
    assert leftovers(tmp_path / "e") == [] and not any((tmp_path / "e").iterdir())


def test_truncated_transfer_is_retried_then_reported(server, monkeypatch, tmp_path):
    url, hits = server
    monkeypatch.setenv(data.MIRRORS_ENV, f"{url}/truncated/")
    with pytest.raises(data.DataNotFoundError) as err:
        data.mnist_dir(tmp_path / "d", timeout=5, retries=2)
    msg = str(err.value)
    assert "transfer ended after" in msg and "(attempt 2/2)" in msg
    assert [k for k, _ in hits] == ["truncated", "truncated"]        # stops at the first file that fails
    assert not any((tmp_path / "d").iterdir())
    monkeypatch.setenv(data.MIRRORS_ENV, f"{url}/truncated/,{url}/good/")
    data.mnist_dir(tmp_path / "d", timeout=5, retries=1)
    assert leftovers(tmp_path / "d") == [] and len(os.listdir(tmp_path / "d")) == 4


def test_stalled_transfer_times_out_and_leaves_nothing(server, monkeypatch, tmp_path):
    url, _ = server
    monkeypatch.setenv(data.MIRRORS_ENV, f"{url}/stall/")
    with pytest.raises(data.DataNotFoundError, match="timed out"):  # had it waited, the server's 1.5 s silence
        data.mnist_dir(tmp_path / "d", timeout=0.3, retries=1)    # would end in a short transfer instead
    assert not any((tmp_path / "d").iterdir())


def test_interrupted_download_leaves_no_partial_file(server, monkeypatch, tmp_path):
    url, _ = server
    monkeypatch.setenv(data.MIRRORS_ENV, f"{url}/good/")
    real_urlopen = data.urllib.request.urlopen

    class Interrupted:                      # Ctrl-C after the first chunk has been written
        def __init__(self, resp):
            self.resp, self.calls = resp, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.resp.close()

        def read(self, n):
            self.calls += 1
            if self.calls > 1:
                raise KeyboardInterrupt
            return self.resp.read(100)

    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: Interrupted(real_urlopen(*a, **k)))
    with pytest.raises(KeyboardInterrupt):
        data.mnist_dir(tmp_path / "d", timeout=5)
    assert list((tmp_path / "d").iterdir()) == []
    monkeypatch.setattr(data.urllib.request, "urlopen", real_urlopen)
    data.mnist_dir(tmp_path / "d", timeout=5)                        # the next run starts cleanly
    assert leftovers(tmp_path / "d") == []


def test_damaged_cached_file_is_caught_by_its_md5_and_downloaded_again(server, monkeypatch, tmp_path, fake_mnist):
    url, hits = server
    monkeypatch.setenv(data.MIRRORS_ENV, f"{url}/good/")
    folder = data.mnist_dir(tmp_path / "d", timeout=5)
    name = "train-images-idx3-ubyte.gz"
    blob = fake_mnist[name]
    (folder / name).write_bytes(blob[:-20])                         # truncated on disk
    with pytest.raises(data.DataNotFoundError, match=rf"download=False; wrong md5 .*{name}"):
        data.mnist_dir(folder, download=False)
    hits.clear()
    with pytest.warns(UserWarning, match=f"{name} in .*wrong md5"):
        data.mnist_dir(folder, timeout=5)
    assert hits == [("good", name)] and (folder / name).read_bytes() == blob
    # same size, one flipped byte: the md5 still catches it
    flipped = bytearray(blob); flipped[100] ^= 1
    (folder / name).write_bytes(bytes(flipped))
    with pytest.warns(UserWarning, match="wrong md5"):
        data.mnist_dir(folder, timeout=5)
    assert (folder / name).read_bytes() == blob


def test_offline_with_no_files_gives_one_clear_error_fast(tmp_path, monkeypatch):
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    attempts, waits = [], []
    real_urlopen = data.urllib.request.urlopen

    def urlopen(req, *args, **kwargs):
        attempts.append((getattr(req, "full_url", req), kwargs.get("timeout")))
        return real_urlopen(req, *args, **kwargs)

    monkeypatch.setattr(data.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(data.time, "sleep", waits.append)           # the back-off, recorded instead of waited
    with pytest.raises(data.DataNotFoundError) as err:               # mirrors: the refused local port
        data.mnist_dir(timeout=2)
    # fast because it gives up at once: 3 attempts at the first file, 0.5 s and 1 s apart, no other file tried
    first = next(iter(data.MNIST_FILES))
    assert attempts == [(f"http://127.0.0.1:9/{first}", 2)] * 3 and waits == [0.5, 1.0]
    msg = str(err.value)
    for name, (md5, size, _) in data.MNIST_FILES.items():
        assert name in msg and md5 in msg and f"{size:,}" in msg
    assert str(tmp_path / "cache" / "ganlib" / "mnist") in msg and data.DATA_ENV in msg
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(data.DataNotFoundError, match="download=False"):
        data.load_mnist(download=False)


def test_default_mirrors_are_used_without_the_variable(monkeypatch):
    monkeypatch.delenv(data.MIRRORS_ENV)
    assert data._mirrors() == list(data.MNIST_MIRRORS)
    monkeypatch.setenv(data.MIRRORS_ENV, "file:///a ,  http://b/x/")
    assert data._mirrors() == ["file:///a/", "http://b/x/"]


def test_file_md5_matches_hashlib(tmp_path):
    blob = os.urandom(3 << 20 | 17)
    (tmp_path / "f").write_bytes(blob)
    assert data.file_md5(tmp_path / "f") == hashlib.md5(blob).hexdigest()
