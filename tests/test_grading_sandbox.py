"""The grader's sandbox (ganlib.grading.sandbox) against the escapes a hostile submission tries.

Each test runs a small Python script through ``sandbox_command`` and checks what it could do;
run as root (as in CI) they test the two-stage sandbox, and ``test_as_an_ordinary_user`` runs
the same kind of checks as uid 65534. Skipped, with the reason, where bubblewrap is unusable.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ganlib.grading import sandbox as sb

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = sb.sandbox_problem()
# /tmp inside: the work folder, plus the top folder of any part of the Python installation or ganlib that
# lives under the host's /tmp (e.g. a clone with its .venv in /tmp), bound read-only at its own path
TMP_INSIDE = sorted({"grading"} | {p.split("/")[2] for _, p in sb.visible_paths() if p.startswith("/tmp/")})
needs_sandbox = pytest.mark.skipif(bool(PROBLEM), reason=f"the sandbox needs a working bubblewrap: {PROBLEM}")
ENV = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def boxed(code: str, work: Path, env: dict | None = None, **kwargs) -> dict:
    """Run ``code`` sandboxed; it prints one JSON object last; return it."""
    cmd = sb.sandbox_command(str(work), [sys.executable, "-c", code], {**ENV, **(env or {})}, **kwargs)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **sb.popen_kwargs())
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def work(tmp_path):
    w = tmp_path / "work"
    w.mkdir(mode=0o700)
    return w


@pytest.fixture
def start(tmp_path, monkeypatch):
    """The grader's start folder, with a solutions/ folder, and a sibling submission beside it."""
    s = tmp_path / "start"
    (s / "solutions").mkdir(parents=True)
    (s / "solutions" / "answer.py").write_text("ANSWER = 42\n")
    (tmp_path / "other_submission.ipynb").write_text("{}")
    monkeypatch.chdir(s)
    return s


CAPS = """
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
def call(f, *a):
    r = f(*a)
    return r, ctypes.get_errno()
status = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)
res = {'uid': os.getuid(), 'euid': os.geteuid(), 'capeff': int(status['CapEff'], 16), 'capprm': int(status['CapPrm'], 16),
       'nonewprivs': status['NoNewPrivs'].strip(),
       'remount': call(libc.mount, None, b'/', None, 32 | 4096, None),
       'mount_tmpfs': call(libc.mount, b'x', b'/tmp', b'tmpfs', 0, None),
       'umount': [call(libc.umount2, p.encode(), 2) for p in ('/tmp', '/tmp/grading', HOME, '/')],
       'unshare_user': call(libc.unshare, 0x10000000)}
res['tmp_after'] = sorted(os.listdir('/tmp'))
print(json.dumps(res))
"""


@needs_sandbox
def test_no_capabilities_so_mount_and_umount_fail(work, start):
    res = boxed(CAPS.replace("HOME", repr(os.path.expanduser("~"))), work)
    assert res["uid"] != 0 and res["euid"] != 0 and res["capeff"] == 0 and res["capprm"] == 0
    assert res["nonewprivs"] == "1"
    for name in ("remount", "mount_tmpfs"):
        assert res[name][0] == -1 and res[name][1] == 1, (name, res[name])  # EPERM
    assert all(r == -1 for r, _ in res["umount"]), res["umount"]
    assert res["unshare_user"][0] == -1  # no further user namespace to regain capabilities in
    assert res["tmp_after"] == TMP_INSIDE


WRITE = """
import json, os
res = {}
for p in PATHS:
    try:
        with open(p, 'w') as f:
            f.write('x')
        res[p] = 'written'
    except OSError as exc:
        res[p] = type(exc).__name__
print(json.dumps(res))
"""


@needs_sandbox
def test_writes_only_reach_the_work_folder(work, start, tmp_path):
    home = os.path.expanduser("~")
    targets = ["/planted", "/tmp/planted", "/usr/planted", str(ROOT / "planted"), str(ROOT / "ganlib" / "planted.py"),
               str(start / "planted"), str(tmp_path / "planted"), os.path.join(home, "planted"), "/var/tmp/planted"]
    inside = [sb.WORKDIR + "/ok.txt", "ok2.txt"]
    res = boxed(WRITE.replace("PATHS", repr(targets + inside)), work)
    assert all(res[p] != "written" for p in targets), res
    assert all(res[p] == "written" for p in inside), res
    assert not [p for p in targets if os.path.exists(p)]
    assert sorted(os.listdir(work)) == ["ok.txt", "ok2.txt"]


LOOK = """
import json, os
print(json.dumps({'exists': {p: os.path.exists(p) for p in PATHS}, 'top': sorted(os.listdir('/')),
                  'tmp': sorted(os.listdir('/tmp')), 'repo': sorted(os.listdir(REPO)) if os.path.isdir(REPO) else None}))
"""


@needs_sandbox
def test_only_what_grading_needs_is_visible(work, start, tmp_path):
    hidden = [str(ROOT / "solutions"), str(ROOT / "exercises"), str(ROOT / "tests"), str(start),
              str(start / "solutions" / "answer.py"), str(tmp_path / "other_submission.ipynb"), str(tmp_path),
              os.path.expanduser("~"), "/root", "/var/tmp", "/var", "/home", "/run", "/mnt", "/opt", "/srv"]
    hidden = [p for p in hidden if not any(p == v or v.startswith(p.rstrip("/") + "/") for _, v in sb.visible_paths())]
    res = boxed(LOOK.replace("PATHS", repr(hidden)).replace("REPO", repr(str(ROOT))), work)
    assert not any(res["exists"].values()), res["exists"]
    assert res["tmp"] == TMP_INSIDE
    tops = {"/" + p.split("/")[1] for _, p in sb.visible_paths()} | {"/proc", "/dev", "/tmp"}
    assert {"/" + t for t in res["top"]} <= tops, res["top"]
    if res["repo"] is not None:  # the repository folder holds only the package and, maybe, its environment
        assert set(res["repo"]) <= {"ganlib", ".venv", "venv"}, res["repo"]


SITE = """
import json, os, sys
planted = []
for d in DIRS:
    try:
        with open(os.path.join(d, 'sitecustomize.py'), 'w') as f:
            f.write('import builtins; builtins.PLANTED = True\\n')
        planted.append(d)
    except OSError:
        pass
import builtins
print(json.dumps({'imported': hasattr(builtins, 'PLANTED'),
                  'site': getattr(sys.modules.get('sitecustomize'), '__file__', None), 'planted': planted,
                  'path': sys.path}))
"""


@needs_sandbox
def test_sitecustomize_in_the_start_folder_is_never_imported(work, start):
    dirs = [str(start), str(ROOT), sb.WORKDIR]
    env = {"PYTHONPATH": os.pathsep.join([str(start), str(ROOT)])}
    first = boxed(SITE.replace("DIRS", repr(dirs)), work, env)
    assert not (start / "sitecustomize.py").exists() and not (ROOT / "sitecustomize.py").exists()
    assert first["planted"] == [sb.WORKDIR]  # only its own work folder, which is not on the import path
    # one placed there from outside (by anyone) is not imported by a later run either
    (start / "sitecustomize.py").write_text("import builtins; builtins.PLANTED = True\n")
    second = boxed(SITE.replace("DIRS", "[]"), work, env)
    assert not first["imported"] and not second["imported"]
    assert second["site"] is None or not second["site"].startswith((str(start), sb.WORKDIR)), second


FORK = """
import json, os, posix
r, w = os.pipe()
made, error = 0, None
for _ in range(30):
    try:
        pid = posix.fork()
    except OSError as exc:
        error = type(exc).__name__
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    made += 1
os.close(w)
for _ in range(made):
    os.wait()
print(json.dumps({'made': made, 'error': error}))
"""


@needs_sandbox
@pytest.mark.parametrize("max_tasks", [sb.MAX_TASKS, 8])
def test_the_kernel_caps_processes(work, start, max_tasks):
    res = boxed(FORK, work, max_tasks=max_tasks)
    # bwrap's init and the Python itself count too
    assert res["made"] <= max_tasks - 2 and res["made"] < 30 and res["error"] == "BlockingIOError", res


NET = """
import json, socket
res = {'interfaces': [n for _, n in socket.if_nameindex()]}
for host in [('127.0.0.1', PORT), ('1.1.1.1', 80)]:
    try:
        socket.create_connection(host, timeout=5).close()
        res[host[0]] = 'connected'
    except OSError as exc:
        res[host[0]] = type(exc).__name__
print(json.dumps(res))
"""


@needs_sandbox
def test_no_network(work, start):
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        res = boxed(NET.replace("PORT", str(server.getsockname()[1])), work)
    finally:
        server.close()
    assert res["interfaces"] == ["lo"] and "connected" not in res.values(), res


WORKS = """
import json, os, numpy as np, torch, ganlib
x = torch.arange(6.0).reshape(2, 3)
np.save('out.npy', x.numpy().sum(axis=0))
print(json.dumps({'sum': float(x.sum()), 'cwd': os.getcwd(), 'home': os.environ['HOME'], 'tmpdir': os.environ['TMPDIR'],
                  'mpl': os.environ.get('MPLCONFIGDIR')}))
"""


@needs_sandbox
def test_torch_numpy_and_the_work_folder_work(work, start):
    import numpy as np

    res = boxed(WORKS, work, {"MPLCONFIGDIR": str(work)})
    assert res["sum"] == 15.0 and res["cwd"] == res["home"] == res["tmpdir"] == res["mpl"] == sb.WORKDIR
    np.testing.assert_array_equal(np.load(work / "out.npy"), [3.0, 5.0, 7.0])


@needs_sandbox
def test_killing_the_process_group_ends_the_sandbox(work, start):
    marker = f"marker-{uuid.uuid4().hex}"
    code = f"import time, os\nos.fork()\ntime.sleep(600)  # {marker}"
    proc = subprocess.Popen(sb.sandbox_command(str(work), [sys.executable, "-c", code], ENV),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **sb.popen_kwargs())

    def running() -> int:
        count = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                count += marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                pass
        return count

    for _ in range(600):  # wait until both processes run (no time is asserted)
        if running() >= 2 or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert running() >= 2, proc.stderr.read() if proc.poll() is not None else ""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for _ in range(200):
        if not running():
            break
        time.sleep(0.05)
    assert running() == 0


def test_sandbox_problem_names_a_missing_or_broken_bwrap(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert "not installed" in sb.sandbox_problem()
    broken = tmp_path / "broken"
    broken.mkdir()
    fake = broken / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{broken}:/usr/bin:/bin")
    problem = sb.sandbox_problem()
    assert problem.startswith("`bwrap` is installed but does not work here") and "No permissions" in problem
    assert "docker run --rm --network none --read-only" in sb.INSTALL_HINT and "one container per notebook" in sb.INSTALL_HINT


def test_trust_model_states_guarantees_limits_and_exit_codes():
    text = " ".join(sb.TRUST_MODEL.split())
    for phrase in ("not a proctoring tool", "copy code they can import", "no capabilities", "never runs learner code",
                   "3 a submission misbehaved", "kernel bug", "For an exam", "--network none"):
        assert phrase in text, phrase


ORDINARY = """
import json, os, subprocess, sys, tempfile
from ganlib.grading import sandbox as sb
assert os.geteuid() != 0
problem = sb.sandbox_problem()
out = {'problem': problem}
if not problem:
    work = tempfile.mkdtemp()
    code = CODE
    cmd = sb.sandbox_command(work, [sys.executable, '-c', code], {'PATH': '/usr/bin:/bin', 'OMP_NUM_THREADS': '1'})
    run = subprocess.run(cmd, capture_output=True, text=True, **sb.popen_kwargs())
    out['inner'] = json.loads(run.stdout.strip().splitlines()[-1]) if run.returncode == 0 else run.stderr
    out['files'] = sorted(os.listdir(work))
print(json.dumps(out))
"""
INNER = """
import ctypes, json, os, posix
libc = ctypes.CDLL(None, use_errno=True)
status = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)
made = 0
try:
    for _ in range(30):
        if posix.fork() == 0:
            import time; time.sleep(2); os._exit(0)
        made += 1
except OSError:
    pass
import torch
open('ok', 'w').write('x')
print(json.dumps({'capeff': int(status['CapEff'], 16), 'remount': libc.mount(None, b'/', None, 32 | 4096, None),
                  'umount': libc.umount2(b'/tmp/grading', 2), 'made': made, 'tmp': os.listdir('/tmp'),
                  'solutions': os.path.exists(SOLUTIONS), 'torch': torch.__version__}))
"""


@needs_sandbox
def test_as_an_ordinary_user(tmp_path):
    """The one-stage sandbox, run by uid 65534 in a view where the Python installation is readable."""
    if os.geteuid() != 0:
        pytest.skip("already an ordinary user: the other tests check the one-stage sandbox")
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("setpriv (util-linux) is needed to run the check as an ordinary user")
    bwrap = shutil.which("bwrap")
    view = sb.visible_paths()
    if any(p.startswith("/tmp/") for _, p in view):
        pytest.skip("this test plays an ordinary user with a fresh /tmp, which would hide a Python or ganlib under /tmp")
    inner = INNER.replace("SOLUTIONS", repr(str(ROOT / "solutions")))
    script = ORDINARY.replace("CODE", repr(inner))
    cmd = [bwrap, "--die-with-parent", *sb._layout(view, sb._options(bwrap)), "--dev", "/dev", "--bind", "/proc", "/proc",
           "--perms", "1777", "--tmpfs", "/tmp", "--", setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
           sys.executable, "-c", script]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd="/")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["problem"] == "", res
    inner = res["inner"]
    assert isinstance(inner, dict), inner
    assert inner["capeff"] == 0 and inner["remount"] == -1 and inner["umount"] == -1
    assert inner["made"] <= sb.MAX_TASKS - 2 and inner["tmp"] == TMP_INSIDE and not inner["solutions"]
    assert res["files"] == ["ok"]
