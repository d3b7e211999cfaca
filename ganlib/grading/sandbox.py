"""The grader's sandbox: bubblewrap without capabilities, a minimal file system and a process limit (chapter 00).

``ganlib grade --sandbox`` runs each worker (the process that executes a learner's code) under
`bubblewrap <https://github.com/containers/bubblewrap>`_ (``bwrap``). :func:`sandbox_command`
wraps a command line so that, inside,

* the process runs as an unprivileged user in its own user namespace and holds **no
  capabilities**, also when the grader runs as root: ``mount``, ``umount2`` and friends fail;
* it sees **only what grading needs**: ``/usr`` (with the ``/bin``, ``/lib*`` links), a few
  files of ``/etc`` the dynamic linker reads, the Python installation (its prefixes and
  site-packages), the ``ganlib`` package folder, all read-only, and a fresh work folder,
  read-write, at :data:`WORKDIR`. The grader's start folder, ``solutions/``, other
  submissions, the host's ``/tmp``, ``/var``, home folders and ``/root`` do not exist inside;
* it has no network (its own network namespace holds only a loopback device), its own PID,
  IPC and UTS namespaces, a new terminal session, and dies with the grader;
* the kernel caps the processes and threads it may hold at ``max_tasks`` (``RLIMIT_NPROC``,
  counted per sandbox in its user namespace), whatever Python-level calls it makes.

As root the command has two stages: a first ``bwrap`` (still root) builds the minimal file
system, which may include folders only root can traverse (e.g. a Python under ``/root``);
inside it, the command drops to uid and gid :data:`UNPRIVILEGED_ID` (65534, ``nobody``) and
starts a second, unprivileged ``bwrap`` that creates the user namespace and the rest. The work
folder is handed to that uid. For any other user there is one, unprivileged, stage.

Example
-------
>>> import subprocess, sys, tempfile
>>> if not sandbox_problem():
...     with tempfile.TemporaryDirectory() as work:
...         code = "import os; print(os.getcwd())"
...         out = subprocess.run(sandbox_command(work, [sys.executable, "-c", code], {}),
...                              capture_output=True, text=True, **popen_kwargs())
...         assert out.stdout.strip() == WORKDIR, out.stderr
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

__all__ = ["WORKDIR", "UNPRIVILEGED_ID", "MAX_TASKS", "INSTALL_HINT", "TRUST_MODEL", "sandbox_problem",
           "sandbox_command", "popen_kwargs", "visible_paths"]

WORKDIR = "/tmp/grading"
"""Where the work folder appears inside the sandbox (also ``HOME`` and ``TMPDIR`` there)."""

UNPRIVILEGED_ID = 65534
"""The uid and gid (``nobody``/``nogroup``) the sandbox runs as when the grader is root."""

MAX_TASKS = 24
"""Default cap on the processes and threads inside one sandbox, bwrap's own init process included."""

INSTALL_HINT = """\
Install bubblewrap: `sudo apt-get install bubblewrap` (Debian, Ubuntu), `sudo dnf install bubblewrap` (Fedora),
`sudo pacman -S bubblewrap` (Arch). It needs unprivileged user namespaces, also when grading as root (the
sandbox then runs as the user nobody): on Ubuntu 24.04 and later an AppArmor profile that allows bwrap,
elsewhere `sysctl kernel.unprivileged_userns_clone=1` and `sysctl user.max_user_namespaces=10000`. Inside a
Docker container bwrap usually cannot work (no user namespaces, masked /proc). bubblewrap does not exist on
macOS or Windows: there, grade each notebook in its own container, without network and with a read-only
file system. Build the image once (from the course folder):
  docker build -t ganlib-grader -f - . <<'EOF'
  FROM python:3.11-slim
  COPY pyproject.toml README.md LICENSE /src/
  COPY ganlib /src/ganlib
  RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch>=2.1,<3" && pip install --no-cache-dir /src
  EOF
then grade a folder of submissions, one container per notebook (so no submission can read another), with:
  mkdir -p grades; for f in submissions/*.ipynb; do docker run --rm --network none --read-only --tmpfs /tmp --memory 4g --pids-limit 256 --cap-drop ALL --security-opt no-new-privileges --user 65534:65534 -e HOME=/tmp -e MPLCONFIGDIR=/tmp -v "$PWD/$f":/submission.ipynb:ro ganlib-grader python -m ganlib grade --json /submission.ipynb > "grades/$(basename "$f" .ipynb).json"; done
Nothing was graded: with --sandbox the grader never runs a submission unsandboxed."""

TRUST_MODEL = """\
Trust model. The grader runs the code of the notebooks it grades: every answer cell, whole, and
what the answer cells use. It gives learners feedback; it is not a proctoring tool.

What decides a grade: the grading process, which never runs learner code, chooses each question's
inputs, compares the outputs the worker sends back (plain data, validated) with the reference, and
decides every status and point. A submission that misbehaves (forged or malformed messages, a
crashed or hung worker) is reported as a protocol violation and its row says so; the other
notebooks of the batch are graded as usual. Exit codes: 0 every notebook has full marks, 1 some
notebook has not, 2 nothing could be graded (unusable input, or --sandbox unavailable), 3 a
submission misbehaved.

With --sandbox (bubblewrap; the same guarantees whether the grader runs as root or not) the worker
runs as an unprivileged user in its own user namespace with no capabilities, so it cannot mount or
unmount anything; it sees only /usr, the Python installation and the ganlib package (read-only) and a
fresh work folder: not the folder the grader was started from, not solutions/, not the other
submissions, /tmp, home folders or /root. It has no network, its own process namespace, a kernel
limit on its processes and threads, and it dies with the grader.

What the sandbox does not do. A learner can always copy code they can import (ganlib, and whatever
else is installed), and a notebook can contain anything its author wrote: the grade says the code
computed the right outputs here, not who wrote it. The sandbox does not hide the CPU, memory or time
a submission uses from the others on the machine beyond the worker's limits, and a kernel bug can
break any sandbox. Without --sandbox a submission runs as your user: it can read and write whatever
you can, and may be able to tamper with the grading process itself, so its grade proves nothing.

For an exam: grade with --sandbox on a machine (or a container with --network none) that holds no
other secrets and no other course's files, with a per-notebook time limit, from a folder that holds
only the submissions; keep the submitted files and the JSON report."""

_LIMIT = ("import os, resource, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_NPROC, (n, n)); "
          "os.execvp(sys.argv[2], sys.argv[2:])")
_DROP = ("import os, sys; w, i = sys.argv[1], int(sys.argv[2]); os.chown(w, i, i); os.chmod(w, 0o700); "
         "os.setgroups([]); os.setresgid(i, i, i); os.setresuid(i, i, i); "
         "assert os.getresuid() == (i, i, i) and os.getresgid() == (i, i, i); os.execv(sys.argv[3], sys.argv[3:])")
_TOP_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives", "/etc/fonts")


def _bwrap() -> str:
    return shutil.which("bwrap") or ""


@functools.lru_cache(maxsize=None)
def _options(bwrap: str) -> frozenset[str]:
    """The options this ``bwrap`` understands, read from its ``--help``."""
    try:
        text = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(w for w in text.split() if w.startswith("--"))


def _covered(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def visible_paths() -> list[tuple[str, str]]:
    """What the sandbox shows of the host, besides the work folder, as ``(kind, path)`` pairs.

    Returns
    -------
    list of (str, str)
        ``("link", path)`` for top-level links such as ``/lib -> usr/lib`` (recreated, not bound)
        and ``("ro", path)`` for paths bound read-only at the same place: ``/usr``, the linker's
        files in ``/etc``, the Python prefixes (only their ``bin``, ``lib*`` and ``pyvenv.cfg``
        when a prefix holds the start folder), site-packages folders on ``sys.path``, the
        ``ganlib`` package folder and ``bwrap`` itself.

    Example
    -------
    >>> ("ro", "/usr") in visible_paths()
    True
    """
    found: list[tuple[str, str]] = []
    for p in _TOP_LINKS:
        if os.path.islink(p):
            found.append(("link", p))
    wanted = ["/usr"]
    wanted += [p for p in _ETC if os.path.exists(p)]
    start = os.path.realpath(os.getcwd())
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, getattr(sys, "base_exec_prefix", sys.prefix)}:
        for p in {os.path.abspath(prefix), os.path.realpath(prefix)}:
            if p == "/" or _covered(start, [p]):  # a prefix that holds the start folder: only its Python parts
                wanted += [os.path.join(p, n) for n in ("bin", "lib", "lib64", "pyvenv.cfg")
                           if os.path.exists(os.path.join(p, n))]
            else:
                wanted.append(p)
    exe = os.path.realpath(sys.executable)
    wanted += [os.path.dirname(exe), os.path.dirname(os.path.abspath(sys.executable))]
    for p in sys.path:
        if p and (os.path.basename(p.rstrip("/")) in ("site-packages", "dist-packages") or p.endswith(".zip")):
            wanted += [os.path.abspath(p), os.path.realpath(p)]
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder of ganlib/
    wanted += [package, os.path.realpath(package)]
    if _bwrap():
        wanted.append(os.path.realpath(_bwrap()))
    kept: list[str] = []
    for p in sorted({os.path.normpath(w) for w in wanted if w and os.path.exists(w)}, key=lambda s: (s.count("/"), s)):
        needed = p in (package, os.path.realpath(package))
        if p in ("/", "/tmp") or _covered(p, kept) or (_covered(start, [p]) and not needed):
            continue  # never the root, the start folder or a folder above it (the package folder is needed)
        if _covered(p, [l for k, l in found]):  # under a top-level link: its target is bound already
            continue
        kept.append(p)
    return found + [("ro", p) for p in kept]


def _layout(view: list[tuple[str, str]], opts: frozenset[str]) -> list[str]:
    """bwrap arguments that recreate ``view``: parent folders (0755), links, read-only binds."""
    args: list[str] = []
    parents = sorted({os.path.dirname(p[:-1] if p.endswith("/") else p) for _, p in view} | {"/tmp"}, key=len)
    made: set[str] = set()
    for parent in parents:
        steps = []
        while parent not in ("/", "") and parent not in made:
            steps.append(parent)
            made.add(parent)
            parent = os.path.dirname(parent)
        for d in reversed(steps):
            args += (["--perms", "0755"] if "--perms" in opts else []) + ["--dir", d]
    for kind, p in view:
        if kind == "link":
            args += ["--symlink", os.readlink(p), p]
    for kind, p in view:
        if kind == "ro":
            args += ["--ro-bind", p, p]
    return args


def _isolation(opts: frozenset[str]) -> list[str]:
    args = ["--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"]
    if "--disable-userns" in opts:
        args.append("--disable-userns")
    return args + ["--cap-drop", "ALL"]


def _environment(workdir: str, env: dict[str, str]) -> list[str]:
    args = ["--chdir", WORKDIR, "--clearenv"]
    work = os.path.realpath(workdir)
    for k, v in {**env, "HOME": WORKDIR, "TMPDIR": WORKDIR}.items():
        for w in {workdir, work}:
            if v == w or v.startswith(w.rstrip("/") + "/"):
                v = WORKDIR + v[len(w.rstrip("/")):]
                break
        args += ["--setenv", k, v]
    return args


def sandbox_command(workdir: str, inner: list[str], env: dict[str, str], max_tasks: int = MAX_TASKS) -> list[str]:
    """The command line that runs ``inner`` in the sandbox (see the module docstring).

    Parameters
    ----------
    workdir : str
        An existing folder, shown read-write at :data:`WORKDIR` inside; when the grader is root
        it is handed to uid :data:`UNPRIVILEGED_ID` (mode 0700), so create it in a private place.
    inner : list of str
        The command to run inside, e.g. ``[sys.executable, "-c", code]``; its working folder is
        :data:`WORKDIR`.
    env : dict of str to str
        Its whole environment (nothing else is inherited); values naming ``workdir`` are
        rewritten to :data:`WORKDIR`, and ``HOME`` and ``TMPDIR`` are set to it.
    max_tasks : int
        Kernel cap (``RLIMIT_NPROC``) on the processes and threads inside, bwrap's init included.

    Returns
    -------
    list of str
        Run it with ``subprocess.Popen(cmd, **popen_kwargs())`` (any ``cwd``); it starts ``bwrap``.

    Example
    -------
    >>> cmd = sandbox_command("/some/folder", ["python", "-c", "pass"], {"PATH": "/usr/bin"})
    >>> cmd[-3:]
    ['python', '-c', 'pass']
    """
    if max_tasks < 2:
        raise ValueError(f"max_tasks={max_tasks}: the sandbox needs at least 2 tasks (bwrap's init and the command)")
    bwrap = _bwrap() or "bwrap"
    opts = _options(bwrap) if _bwrap() else frozenset()
    view = visible_paths()
    run = ["--", sys.executable, "-I", "-S", "-c", _LIMIT, str(int(max_tasks)), *inner]
    inside = ["--dev", "/dev", "--remount-ro", "/dev", "--proc", "/proc"]
    if os.geteuid() != 0:
        return [bwrap, *_isolation(opts), *_layout(view, opts), *inside, "--bind", workdir, WORKDIR,
                "--remount-ro", "/", *_environment(workdir, env), *run]
    # root: stage 1 (root, mount namespace only) builds the view; stage 2 runs as nobody
    outer = [bwrap, "--die-with-parent", *_layout(view, opts), "--dev", "/dev", "--bind", "/proc", "/proc",
             "--bind", workdir, WORKDIR]
    tops = sorted({"/" + p.split("/")[1] for _, p in view} - {"/tmp", "/proc", "/dev"})
    second = [bwrap, *_isolation(opts), *(["--perms", "0755"] if "--perms" in opts else []), "--dir", "/tmp"]
    for top in tops:
        second += ["--symlink", os.readlink(top), top] if ("link", top) in view else ["--ro-bind", top, top]
    # /tmp is fresh in stage 2: bind again what the view holds under it (a virtual environment in /tmp)
    second += [a for kind, p in view if kind == "ro" and _covered(p, ["/tmp"]) for a in ("--ro-bind", p, p)]
    second += [*inside, "--bind", WORKDIR, WORKDIR, "--remount-ro", "/", *_environment(workdir, env), *run]
    drop = [sys.executable, "-I", "-S", "-c", _DROP, WORKDIR, str(UNPRIVILEGED_ID)]
    return [*outer, "--", *drop, *second]


def popen_kwargs() -> dict[str, Any]:
    """Keyword arguments for ``subprocess.Popen`` of a :func:`sandbox_command`.

    Returns
    -------
    dict
        ``start_new_session=True`` (so ``os.killpg(proc.pid, signal.SIGKILL)`` stops every
        bwrap stage; everything inside then dies with them) and ``close_fds=True`` (no file
        descriptor of the grader but stdin, stdout and stderr reaches the sandbox).

    Example
    -------
    >>> popen_kwargs()["start_new_session"]
    True
    """
    return {"start_new_session": True, "close_fds": True}


_PROBE = ("import os, sys\n"
          "status = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)\n"
          "caps = int(status['CapEff'].strip(), 16)\n"
          "open('probe', 'w').write('ok')\n"
          "sys.exit(0 if caps == 0 and os.geteuid() != 0 else 7)\n")
_checked: dict[tuple[str, int], str] = {}


def sandbox_problem() -> str:
    """Why the sandbox cannot be used here, or ``""`` when it works (probed once per process).

    The probe runs a tiny Python through :func:`sandbox_command` and checks that it starts, can
    write its work folder, is not root and holds no capabilities.

    Returns
    -------
    str
        ``""``, or one line saying what is wrong (bwrap missing, or failing and why).

    Example
    -------
    >>> isinstance(sandbox_problem(), str)
    True
    """
    bwrap = _bwrap()
    if not bwrap:
        return "bubblewrap (`bwrap`) is not installed or not on PATH"
    if os.name != "posix" or not hasattr(os, "setresuid"):  # pragma: no cover
        return "the sandbox needs Linux"
    key = (bwrap, os.geteuid())
    if key not in _checked:
        with tempfile.TemporaryDirectory(prefix="ganlib-sandbox-probe-") as work:
            cmd = sandbox_command(work, [sys.executable, "-I", "-S", "-c", _PROBE], {"PATH": "/usr/bin:/bin"})
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=work, **popen_kwargs())
                if out.returncode == 7:
                    why = "the sandboxed process still runs as root or holds capabilities"
                elif out.returncode != 0:
                    why = " ".join((out.stderr or out.stdout or f"exit status {out.returncode}").split())[:300]
                elif not os.path.exists(os.path.join(work, "probe")):
                    why = "the sandboxed process could not write its work folder"
                else:
                    why = ""
            except (OSError, subprocess.TimeoutExpired) as exc:
                why = str(exc)
        _checked[key] = f"`bwrap` is installed but does not work here: {why}" if why else ""
    return _checked[key]
