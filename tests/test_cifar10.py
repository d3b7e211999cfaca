"""CIFAR-10: the archive reader on small archives built here in the published format (Python 2 pickles
in a tar.gz), the restricted unpickler, and the downloader against a local HTTP server (no test touches
the network)."""

import hashlib
import http.server
import io
import os
import pickle
import struct
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ganlib import images

ARCHIVE = "cifar-10-python.tar.gz"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, tmp_path):
    """Every test gets an empty private cache, no $GANLIB_DATA and mirrors that cannot be reached."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(images.DATA_ENV, raising=False)
    monkeypatch.setenv(images.CIFAR10_MIRRORS_ENV, "http://127.0.0.1:9/")   # discard port: connection refused


# ----------------------------------------------------------------------------- the published format

def py2_pickle(obj) -> bytes:
    """``obj`` pickled as Python 2's cPickle (protocol 2) wrote CIFAR-10's batches: byte strings are
    BINSTRING opcodes, and a numpy array is ``numpy.core.multiarray._reconstruct`` plus its state."""
    out = bytearray(b"\x80\x02")

    def put(o):
        if isinstance(o, dict):
            out.extend(b"}(")                              # EMPTY_DICT, MARK
            for k, v in o.items():
                put(k)
                put(v)
            out.extend(b"u")                               # SETITEMS
        elif isinstance(o, list):
            out.extend(b"](")                              # EMPTY_LIST, MARK
            for v in o:
                put(v)
            out.extend(b"e")                               # APPENDS
        elif isinstance(o, tuple):
            out.extend(b"(")                               # MARK
            for v in o:
                put(v)
            out.extend(b"t")                               # TUPLE
        elif isinstance(o, bytes):                         # a Python 2 str
            out.extend(b"U" + bytes([len(o)]) + o if len(o) < 256 else b"T" + struct.pack("<i", len(o)) + o)
        elif o is None:
            out.extend(b"N")
        elif o is False:
            out.extend(b"\x89")
        elif isinstance(o, int):
            out.extend(b"K" + bytes([o]) if 0 <= o < 256 else b"M" + struct.pack("<H", o) if 0 <= o < 65536
                       else b"J" + struct.pack("<i", o))
        elif isinstance(o, np.ndarray):
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            put((0,))
            put(b"b")
            out.extend(b"\x87R")                           # TUPLE3, REDUCE: _reconstruct(ndarray, (0,), 'b')
            out.extend(b"(")                               # MARK: the array's state (1, shape, dtype, False, bytes)
            put(1)
            put(o.shape)
            out.extend(b"cnumpy\ndtype\n")
            put((o.dtype.str[1:].encode(), 0, 1))
            out.extend(b"R")                               # dtype('u1', 0, 1)
            put((3, b"|", None, None, None, -1, -1, 0))
            out.extend(b"b")                               # BUILD: the dtype's state
            out.extend(b"\x89")                            # not in Fortran order
            put(o.tobytes())
            out.extend(b"tb")                              # TUPLE, BUILD: the array's state
        else:
            raise TypeError(type(o))

    put(obj)
    return bytes(out) + b"."


def batch_dict(data: np.ndarray, labels: list[int], label: bytes = b"training batch 1 of 5") -> dict:
    return {b"batch_label": label, b"labels": labels, b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}


def build_archive(path: Path, per_batch: int = 4, seed: int = 0, *, skip=(), replace=None, mtime=0) -> dict:
    """A small archive laid out as the published one; returns the true (images, labels) per split."""
    rng = np.random.default_rng(seed)
    truth, replace = {}, replace or {}
    members = {}
    for split, names in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        xs, ys = [], []
        for name in names:
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, 10, per_batch)]
            xs.append(data.reshape(-1, 3, 32, 32))
            ys.extend(labels)
            members[name] = replace.get(name, py2_pickle(batch_dict(data, labels)))
        truth[split] = (np.concatenate(xs), np.array(ys))
    members["batches.meta"] = py2_pickle({b"label_names": [c.encode() for c in images.CIFAR10_CLASSES],
                                          b"num_cases_per_batch": per_batch, b"num_vis": 3072})
    members["readme.html"] = b"<html>CIFAR-10</html>"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, blob in members.items():
            if name in skip:
                continue
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size, info.mtime = len(blob), mtime
            tar.addfile(info, io.BytesIO(blob))
    path.write_bytes(buf.getvalue())
    return truth


def test_the_fixture_writes_what_pickle_reads_as_the_published_batches():
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    blob = py2_pickle(batch_dict(data, [3, 9]))
    assert blob[:2] == b"\x80\x02" and b"cnumpy.core.multiarray\n_reconstruct\n" in blob
    plain = pickle.loads(blob, encoding="bytes")                 # the reading the CIFAR-10 page gives
    assert sorted(plain) == [b"batch_label", b"data", b"filenames", b"labels"]
    assert plain[b"data"].dtype == np.uint8 and np.array_equal(plain[b"data"], data) and plain[b"labels"] == [3, 9]


def test_read_cifar10_lays_out_channels_rows_and_columns(tmp_path):
    truth = build_archive(tmp_path / ARCHIVE, per_batch=3)
    x, y = images.read_cifar10(tmp_path / ARCHIVE, "train")
    assert x.shape == (15, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.array_equal(x, truth["train"][0]) and np.array_equal(y, truth["train"][1])
    # byte 1024 c + 32 r + col of an image row is channel c, row r, column col: checked one pixel at a time
    raw = pickle.loads(tarfile.open(tmp_path / ARCHIVE).extractfile("cifar-10-batches-py/data_batch_2").read(),
                       encoding="bytes")[b"data"]
    for c, r, col in [(0, 0, 0), (1, 5, 31), (2, 31, 7)]:
        assert x[3 + 1, c, r, col] == raw[1, 1024 * c + 32 * r + col]
    xt, yt = images.read_cifar10(tmp_path / ARCHIVE, "test")
    assert xt.shape == (3, 3, 32, 32) and np.array_equal(yt, truth["test"][1])
    with pytest.raises(ValueError, match="'train' or 'test'"):
        images.read_cifar10(tmp_path / ARCHIVE, "valid")


def test_batches_pickled_by_python_3_read_too(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (2, 3072), dtype=np.uint8)
    blob = pickle.dumps({"data": data, "labels": [0, 9]}, protocol=4)      # numpy's own pickling, str keys
    build_archive(tmp_path / ARCHIVE, per_batch=2, replace={"test_batch": blob})
    x, y = images.read_cifar10(tmp_path / ARCHIVE, "test")
    assert np.array_equal(x.reshape(2, -1), data) and y.tolist() == [0, 9]


class _Exploit:
    """Pickles as os.system("touch MARKER"): what a booby-trapped batch would run on plain pickle.load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("payload", ["exploit", "object_array", "subclass", "float_array"])
def test_the_unpickler_builds_nothing_but_the_format(tmp_path, payload):
    marker = tmp_path / "ran"
    blob = {"exploit": lambda: pickle.dumps({"data": _Exploit(marker), "labels": [0]}, protocol=2),
            "object_array": lambda: pickle.dumps({"data": np.array([None, 1], dtype=object), "labels": [0]}),
            "subclass": lambda: pickle.dumps({"data": np.ma.masked_array(np.zeros((1, 3072), np.uint8)),
                                              "labels": [0]}),
            "float_array": lambda: pickle.dumps({"data": np.zeros((1, 3072)), "labels": [0]})}[payload]()
    build_archive(tmp_path / ARCHIVE, per_batch=1, replace={"test_batch": blob})
    match = {"exploit": r"refusing to load (posix|nt|os)\.system", "object_array": "only uint8 arrays",
             "subclass": "refusing to load numpy.ma", "float_array": "only uint8 arrays"}[payload]
    with pytest.raises(images.DataCorruptError, match=rf"{ARCHIVE}: cifar-10-batches-py/test_batch: not a readable "
                                                       rf"CIFAR-10 batch .*{match}"):
        images.read_cifar10(tmp_path / ARCHIVE, "test")
    assert not marker.exists()
    assert pickle.loads(blob) is not None and (payload != "exploit" or marker.exists())  # plain pickle would run it


@pytest.mark.parametrize("case,match", [
    ("truncated", "cannot read the archive .*damaged or truncated"),
    ("not_gzip", "cannot read the archive"),
    ("missing_batch", "lacks cifar-10-batches-py/data_batch_3; is it the python version"),
    ("bad_shape", r"'data' must be a uint8 array \(N, 3072\), got uint8 \(2, 100\)"),
    ("bad_labels", "'labels' must be a list of 2 integers in 0..9"),
    ("short_labels", "'labels' must be a list of 2 integers"),
    ("not_a_dict", "a CIFAR-10 batch is a dict, got list"),
    ("cut_pickle", "not a readable CIFAR-10 batch"),
])
def test_damaged_archives_give_one_clear_error_naming_the_file(tmp_path, case, match):
    p = tmp_path / ARCHIVE
    good = np.zeros((2, 3072), np.uint8)
    replace = {"bad_shape": py2_pickle(batch_dict(np.zeros((2, 100), np.uint8), [0, 1])),
               "bad_labels": py2_pickle(batch_dict(good, [0, 10])),
               "short_labels": py2_pickle(batch_dict(good, [0])),
               "not_a_dict": py2_pickle([b"data"]),
               "cut_pickle": py2_pickle(batch_dict(good, [0, 1]))[:-300]}.get(case)
    build_archive(p, per_batch=2, skip=("data_batch_3",) if case == "missing_batch" else (),
                  replace={"data_batch_3": replace} if replace else None)
    if case == "truncated":
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    if case == "not_gzip":
        p.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(images.DataCorruptError, match=match) as err:
        images.read_cifar10(p, "train")
    assert str(p) in str(err.value)
    with pytest.raises(FileNotFoundError):
        images.read_cifar10(tmp_path / "absent.tar.gz")


# ----------------------------------------------------------------------------- local server

@pytest.fixture
def fake_archive(monkeypatch, tmp_path_factory):
    """A small archive standing in for CIFAR-10, CIFAR10_FILES patched with its md5 and size."""
    path = tmp_path_factory.mktemp("served") / ARCHIVE
    truth = build_archive(path, per_batch=4, seed=1)
    blob = path.read_bytes()
    monkeypatch.setattr(images, "CIFAR10_FILES", {ARCHIVE: (hashlib.md5(blob).hexdigest(), len(blob), "fake")})
    return blob, truth


class _Handler(http.server.BaseHTTPRequestHandler):
    blob: bytes = b""
    hits: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        kind, name = self.path.strip("/").split("/", 1)
        self.hits.append(kind)
        if kind == "missing" or name != ARCHIVE:
            self.send_error(404)
            return
        blob = bytes(reversed(self.blob)) if kind == "corrupt" else self.blob   # right length, wrong bytes
        self.send_response(200)
        self.send_header("Content-Length", str(len(blob)))
        self.end_headers()
        if kind in ("truncated", "stall"):                # send half; then hang up, or go silent
            self.wfile.write(blob[: len(blob) // 2])
            self.wfile.flush()
            if kind == "stall":
                time.sleep(1.5)
            self.close_connection = True
            return
        self.wfile.write(blob)


@pytest.fixture
def server(fake_archive):
    _Handler.blob, _Handler.hits = fake_archive[0], []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler.hits
    httpd.shutdown()
    httpd.server_close()


def test_404_then_a_good_mirror_downloads_verifies_and_caches(server, monkeypatch, tmp_path, fake_archive):
    url, hits = server
    monkeypatch.setenv(images.CIFAR10_MIRRORS_ENV, f"{url}/missing/,{url}/good")
    folder = images.cifar10_dir(timeout=5)
    assert folder == tmp_path / "cache" / "ganlib" / "cifar10"
    assert (folder / ARCHIVE).read_bytes() == fake_archive[0] and os.listdir(folder) == [ARCHIVE]
    assert hits == ["missing", "good"]                                   # a 404 is not retried
    x, y = images.load_cifar10("train")
    assert x.dtype == torch.uint8 and x.shape == (20, 3, 32, 32) and y.dtype == torch.int64
    assert np.array_equal(x.numpy(), fake_archive[1]["train"][0]) and np.array_equal(y, fake_archive[1]["train"][1])
    xs, ys = images.cifar10_images("test")
    assert xs.dtype == torch.float32 and xs.shape == (4, 3, 32, 32) and -1 <= xs.min() and xs.max() <= 1
    assert torch.equal(images.unscale_images(xs), torch.from_numpy(fake_archive[1]["test"][0]))
    x64, _ = images.cifar10_images("test", size=64)
    assert x64.shape == (4, 3, 64, 64)
    with pytest.raises(ValueError, match="32 or 64"):
        images.cifar10_images("test", size=28)
    hits.clear()
    images.load_cifar10("test")                                          # cached: no request at all
    assert hits == []


def test_the_data_folder_comes_first(server, monkeypatch, tmp_path, fake_archive):
    url, hits = server
    monkeypatch.setenv(images.CIFAR10_MIRRORS_ENV, f"{url}/good/")
    monkeypatch.setenv(images.DATA_ENV, str(tmp_path / "data"))
    assert images.cifar10_dir(timeout=5) == tmp_path / "data" / "cifar10"     # downloads go to its cifar10/
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / ARCHIVE).write_bytes(fake_archive[0])
    monkeypatch.setenv(images.DATA_ENV, str(tmp_path / "flat"))
    hits.clear()
    assert images.cifar10_dir(timeout=5) == tmp_path / "flat" and hits == []  # or holds the archive itself
    assert images.cifar10_dir(tmp_path / "root", timeout=5) == tmp_path / "root"  # an explicit root beats both


def test_corrupt_mirror_is_skipped_and_never_saved(server, monkeypatch, tmp_path, fake_archive):
    url, hits = server
    monkeypatch.setenv(images.CIFAR10_MIRRORS_ENV, f"{url}/corrupt/")
    with pytest.raises(images.DataNotFoundError, match="does not match the published") as err:
        images.cifar10_dir(tmp_path / "d", timeout=5)
    assert os.listdir(tmp_path / "d") == [] and ARCHIVE in str(err.value)
    monkeypatch.setenv(images.CIFAR10_MIRRORS_ENV, f"{url}/corrupt/,{url}/good/")
    images.cifar10_dir(tmp_path / "d", timeout=5)
    assert hits == ["corrupt", "corrupt", "good"] and os.listdir(tmp_path / "d") == [ARCHIVE]


def test_truncated_transfer_is_retried_then_reported_and_leaves_nothing(server, monkeypatch, tmp_path):
    url, hits = server
    monkeypatch.setenv(images.CIFAR10_MIRRORS_ENV, f"{url}/truncated/")
    with pytest.raises(images.DataNotFoundError) as err:
        images.cifar10_dir(tmp_path / "d", timeout=5, retries=2)
    assert "transfer ended after" in str(err.value) and "(attempt 2/2)" in str(err.value)
    assert hits == ["truncated", "truncated"] and os.listdir(tmp_path / "d") == []


def test_stalled_transfer_times_out_and_leaves_nothing(server, monkeypatch, tmp_path):
    url, _ = server
    monkeypatch.setenv(images.CIFAR10_MIRRORS_ENV, f"{url}/stall/")
    with pytest.raises(images.DataNotFoundError, match="timed out"):
        images.cifar10_dir(tmp_path / "d", timeout=0.3, retries=1)
    assert os.listdir(tmp_path / "d") == []


def test_a_damaged_cached_archive_is_downloaded_again(server, monkeypatch, tmp_path, fake_archive):
    url, hits = server
    monkeypatch.setenv(images.CIFAR10_MIRRORS_ENV, f"{url}/good/")
    folder = images.cifar10_dir(tmp_path / "d", timeout=5)
    (folder / ARCHIVE).write_bytes(fake_archive[0][:-10])
    with pytest.raises(images.DataNotFoundError, match=rf"download=False; wrong md5 .*{ARCHIVE}"):
        images.load_cifar10(root=folder, download=False)
    hits.clear()
    with pytest.warns(UserWarning, match="wrong md5"):
        images.cifar10_dir(folder, timeout=5)
    assert hits == ["good"] and (folder / ARCHIVE).read_bytes() == fake_archive[0]


def test_offline_gives_one_clear_error_naming_the_file_its_md5_and_the_folder(tmp_path, monkeypatch):
    attempts, waits = [], []
    real_urlopen = images.urllib.request.urlopen

    def urlopen(req, *args, **kwargs):
        attempts.append((getattr(req, "full_url", req), kwargs.get("timeout")))
        return real_urlopen(req, *args, **kwargs)

    monkeypatch.setattr(images.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(images.time, "sleep", waits.append)             # the back-off, recorded instead of waited
    with pytest.raises(images.DataNotFoundError) as err:                 # the mirror is the refused local port
        images.cifar10_dir(timeout=2)
    # fast because it gives up at once: 3 attempts at the one mirror, 0.5 s and 1 s apart, nothing else
    assert attempts == [(f"http://127.0.0.1:9/{ARCHIVE}", 2)] * 3 and waits == [0.5, 1.0]
    msg = str(err.value)
    md5, size, _ = images.CIFAR10_FILES[ARCHIVE]
    assert md5 == "c58f30108f718f92721af3b95e74349a" and size == 170498071
    assert ARCHIVE in msg and md5 in msg and "170,498,071" in msg and images.DATA_ENV in msg
    assert str(tmp_path / "cache" / "ganlib" / "cifar10") in msg and images.CIFAR10_MIRRORS_ENV in msg
    assert isinstance(err.value, FileNotFoundError) and os.listdir(tmp_path / "cache" / "ganlib" / "cifar10") == []
    with pytest.raises(images.DataNotFoundError, match="download=False"):
        images.load_cifar10("test", download=False)


def test_mirrors_come_from_their_own_variable(monkeypatch):
    monkeypatch.delenv(images.CIFAR10_MIRRORS_ENV)
    assert images._mirrors(images.CIFAR10_MIRRORS_ENV, images.CIFAR10_MIRRORS) == list(images.CIFAR10_MIRRORS)
    monkeypatch.setenv(images.CIFAR10_MIRRORS_ENV, "http://a , http://b/x/")
    assert images._mirrors(images.CIFAR10_MIRRORS_ENV, images.CIFAR10_MIRRORS) == ["http://a/", "http://b/x/"]
    assert images._mirrors() == images._mirrors(images.MIRRORS_ENV, images.MNIST_MIRRORS)   # MNIST's unchanged


# ----------------------------------------------------------------------------- the command line

def test_train_on_cifar10_from_a_folder_and_its_errors(tmp_path, fake_archive, capsys):
    from ganlib.cli.train import main as main_train
    from ganlib.train import load_checkpoint

    (tmp_path / "c10").mkdir()
    (tmp_path / "c10" / ARCHIVE).write_bytes(fake_archive[0])
    base = ["--model", "dcgan", "--data", "cifar10", "--path", str(tmp_path / "c10"), "--device", "cpu",
            "--batch-size", "4", "--width", "8", "--latent-dim", "8", "--steps", "2"]
    assert main_train([*base, "--out", str(tmp_path / "r")]) == 0
    assert "dcgan on cifar10 (20 images of (3, 32, 32))" in capsys.readouterr().out
    meta = load_checkpoint(tmp_path / "r" / "checkpoint.pt")["meta"]
    assert (meta["channels"], meta["image_size"]) == (3, 32)
    assert main_train([*base, "--out", str(tmp_path / "r64"), "--image-size", "64", "--conditional"]) == 0
    assert load_checkpoint(tmp_path / "r64" / "checkpoint.pt")["meta"]["num_classes"] == 10
    for extra, message in ((["--image-size", "28"], "CIFAR-10's images are 32x32: use --image-size 32"),
                           (["--channels", "1"], "CIFAR-10 is in colour: use --channels 3")):
        assert main_train([*base, "--out", str(tmp_path / "bad"), *extra]) == 1
        assert message in capsys.readouterr().err
    # offline, without the archive: one error naming the file, its md5 and the folder
    assert main_train([*base, "--out", str(tmp_path / "off"), "--path", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ganlib train: error: CIFAR-10 is not available") and "Traceback" not in err
    assert ARCHIVE in err and images.CIFAR10_FILES[ARCHIVE][0] in err and str(tmp_path / "empty") in err
    assert os.listdir(tmp_path / "empty") == []                               # nothing half-written
