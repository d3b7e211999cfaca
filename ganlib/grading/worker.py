"""The worker process that runs a learner's code, its resource limits and its sandbox (chapter 00).

The grading process starts one worker per notebook (:class:`_Worker`): a fresh Python
(``python -c "from ganlib.grading.worker import _worker_main; _worker_main()"``) that reads a
job as JSON on stdin, executes the plan's cells under :class:`Limits` (memory, CPU time, file
size, no new processes) and answers the questions, writing JSON lines on stdout. The parent
validates every line and never unpickles anything. With ``sandbox=True`` the worker runs
under bubblewrap, as :mod:`ganlib.grading.sandbox` describes (``sandbox_problem`` says why it
cannot): no capabilities, no network, only the Python installation and ganlib visible
(read-only) beside a fresh work folder, its own PID namespace and a kernel process limit.
"""

from __future__ import annotations

import ast
import json
import linecache
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass
from typing import Any


from ganlib.grading import questions as _questions
from ganlib.grading import remote as _remote
from ganlib.grading import wire
from ganlib.grading.sandbox import popen_kwargs, sandbox_command
from ganlib.grading.questions import (GradingError, _alarm, _is_learner_file, _Timeout, describe_exception, one_line,
                                      questions_for)

SANDBOX_ENV = "GANLIB_GRADE_SANDBOX"
_WORKER_ENV = "GANLIB_GRADING_WORKER"

# --------------------------------------------------------------------------- limits and the worker process


@dataclass(frozen=True)
class Limits:
    """Resource limits of every grading worker (POSIX; not enforced on Windows).

    Attributes
    ----------
    memory_mb : address space (RLIMIT_AS), in MB
    cpu_s : CPU seconds for the whole worker (RLIMIT_CPU)
    file_mb : largest file the worker may write (RLIMIT_FSIZE), in MB
    processes : the worker may not start processes; for a non-root user RLIMIT_NPROC also
        caps the user's tasks at the count when the answers start running plus this number
    """

    memory_mb: float = 3072
    cpu_s: float = 300
    file_mb: float = 64
    processes: int = 16


def _worker_main() -> None:  # pragma: no cover - runs in the worker process (covered through grade_notebook)
    """The worker: read a job (a JSON line) on stdin, run the plan, then answer the grader's requests.

    It only *executes*: every request (call a learner's function, read an attribute, a backward
    pass) is answered with plain data (:mod:`ganlib.grading.wire`); the grader runs the checks.
    """
    sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd())]
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    requests = os.fdopen(os.dup(0), "rb")
    devnull = os.open(os.devnull, os.O_RDWR)

    def send(**event):
        proto.write(wire.dumps(event) + "\n")
        proto.flush()

    job = json.loads(requests.readline())
    os.dup2(devnull, 0)
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        questions_for(job["chapter"])  # imports what the checks' objects need (torch), before the limits
    except GradingError as exc:  # e.g. torch missing: say so (before any learner code has run)
        send(e="unusable", message=str(exc))
        proto.flush()
        os._exit(3)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    limits = Limits(**job["limits"])
    _questions.memory_limit_mb = limits.memory_mb  # so messages can name the limit
    _apply_limits(limits)
    send(e="ready")
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)

    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    skip = set(job["skip_steps"])
    for i, step in enumerate(job["steps"]):
        if i in skip:
            continue
        send(e="step", i=i)
        status, message = _run_step(step, namespace, job["load_timeout"])
        send(e="step_done", i=i, status=status, message=message)
    defined = sorted(n for n in job["needed"] if n in namespace)
    send(e="loaded", defined=defined)
    server = _remote.Server(namespace)
    while True:
        line = requests.readline()
        if not line:
            break
        request = json.loads(line)
        if request.get("op") == "end":
            break
        try:
            reply = server.handle(request)
        except BaseException as exc:  # noqa: BLE001 - a request that failed before any learner code ran
            reply = {"value": None, "exc": _remote.describe_error(exc), "state": []}
        try:
            text = wire.dumps({"e": "reply", "id": request["id"], **reply})
        except (TypeError, ValueError) as exc:
            text = wire.dumps({"e": "reply", "id": request["id"], "value": None,
                               "exc": _remote.describe_error(exc), "state": []})
        proto.write(text + "\n")
        proto.flush()
    proto.flush()
    os._exit(0)


def _run_step(step: dict, namespace: dict, limit: float) -> tuple[str, str]:  # pragma: no cover - worker side
    filename = f"<{step['label']}>"
    source = step["source"]
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    tree = ast.parse(source, filename=filename)
    if step["keep"] is not None:
        tree = ast.Module(body=[tree.body[j] for j in step["keep"]], type_ignores=[])
    try:
        with _alarm(limit):
            exec(compile(tree, filename, "exec"), namespace)
    except _Timeout:
        return "timeout", ""
    except NotImplementedError as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_learner_file(f.filename)]
        if step["stub"] and frames and frames[-1].name == "<module>":
            return "stub", ""
        return "error", describe_exception(exc)
    except MemoryError as exc:
        return "memory", describe_exception(exc)
    except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt... from learner code
        return "error", describe_exception(exc)
    return "ok", ""


def _apply_limits(limits: Limits) -> None:  # pragma: no cover - worker side
    try:
        import resource
    except ImportError:  # Windows
        return
    mb = 1024 * 1024

    def cap(which, value):
        try:
            resource.setrlimit(which, (int(value), int(value)))
        except (ValueError, OSError):
            pass

    cap(resource.RLIMIT_AS, limits.memory_mb * mb)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (int(limits.cpu_s), int(limits.cpu_s) + 5))
    except (ValueError, OSError):
        pass
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too large write fails with EFBIG instead of killing
    cap(resource.RLIMIT_FSIZE, limits.file_mb * mb)
    tasks = _user_tasks()
    if hasattr(resource, "RLIMIT_NPROC") and os.geteuid() != 0 and tasks:
        cap(resource.RLIMIT_NPROC, tasks + limits.processes)
    _block_processes()


def _user_tasks() -> int:  # pragma: no cover - worker side
    """Tasks (processes and threads) of this user now, from /proc; 0 where there is no /proc."""
    uid, count = os.getuid(), 0
    if not os.path.isdir("/proc/self/task"):
        return 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return max(count, 1)


def _block_processes() -> None:  # pragma: no cover - worker side
    def refuse(*args, **kwargs):
        raise PermissionError("starting a process is not allowed while grading")

    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "popen", "execv", "execve",
                 "execvp", "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv", "spawnve"):
        if hasattr(os, name):
            setattr(os, name, refuse)
    try:
        import _posixsubprocess

        _posixsubprocess.fork_exec = refuse
    except ImportError:
        pass


# --------------------------------------------------------------------------- the parent side


class _WorkerFailed(BaseException):
    """The worker stopped (killed, crashed, timed out, or broke the protocol) during ``activity``.

    A BaseException, so that it passes through a check's ``except Exception`` to the judge.
    """

    def __init__(self, activity: tuple[str, Any], why: str):
        super().__init__(why)
        self.activity, self.why = activity, why


_EVENT_KEYS = {
    "unusable": {"message"}, "ready": set(), "step": {"i"}, "step_done": {"i", "status", "message"}, "loaded": {"defined"},
    "reply": {"id", "value", "exc", "state"},
}
_STEP_STATUSES = ("ok", "error", "stub", "timeout", "memory")
_MAX_LINE = wire.MAX_BYTES * 4 // 3 + 16 * 2**20   # one reply: its arrays in base64, and the rest
_MAX_OUTPUT = 1024 * 2**20                           # everything one worker may send


def _import_path() -> list[str]:
    """The grader's import path for the worker, without the start folder (where a submission could
    plant a ``sitecustomize.py``) unless that folder is where ``ganlib`` itself is imported from."""
    home = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds ganlib/
    cwd = os.path.realpath(os.getcwd())
    return [p for p in sys.path if p and os.path.isdir(p)
            and (os.path.realpath(p) != cwd or os.path.realpath(p) == os.path.realpath(home))]


class _Worker:
    """One worker process and its JSON-lines channel; never unpickles anything."""

    def __init__(self, job: dict, sandbox: bool, workdir: str, startup_timeout: float):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": os.pathsep.join(_import_path()),
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONSAFEPATH": "1", "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            _WORKER_ENV: "1", "LANG": "C.UTF-8", "MPLCONFIGDIR": workdir, "HOME": workdir,
        }
        if "GANLIB_SMOKE" in os.environ:
            env["GANLIB_SMOKE"] = os.environ["GANLIB_SMOKE"]
        inner = [sys.executable, "-c", "from ganlib.grading.worker import _worker_main; _worker_main()"]
        cmd = sandbox_command(workdir, inner, env) if sandbox else inner
        self.stderr = tempfile.TemporaryFile()
        kwargs: dict[str, Any] = popen_kwargs() if sandbox else {}
        if os.name == "posix":
            kwargs["start_new_session"] = True
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     cwd=workdir, env=env, **kwargs)
        self.lines: queue.Queue = queue.Queue()
        self.requests: queue.Queue = queue.Queue()
        self.sent = threading.Semaphore(0)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()
        self.requests.put(((json.dumps(job) + "\n").encode(), False))
        self.startup_timeout = startup_timeout
        self.next_id = 0

    def _write(self) -> None:
        # in a thread: a worker that stops reading must not block the grader (pipes hold only 64 KB)
        while True:
            item = self.requests.get()
            if item is None:
                return
            data, counted = item
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except (OSError, ValueError):
                return
            if counted:
                self.sent.release()

    def send(self, message: dict, activity: tuple[str, Any], timeout: float) -> None:
        """Write one request line; the worker must take it within ``timeout`` seconds (else it is killed)."""
        self.requests.put(((json.dumps(message) + "\n").encode(), True))
        if not self.sent.acquire(timeout=max(timeout, 0.01)):
            self.kill()
            raise _WorkerFailed(activity, "timeout")

    def end(self) -> None:
        """Tell the worker to stop (it exits on its own; :meth:`kill` follows anyway)."""
        self.requests.put((b'{"op": "end"}\n', False))
        self.requests.put(None)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait for the worker's "ready"; raise :class:`GradingError` when it says it cannot grade this chapter.

        Only this first event may be "unusable": it comes before any learner code runs.
        """
        event = self.next_event(("startup", None), self.startup_timeout if timeout is None else timeout)
        if event["e"] == "unusable" and isinstance(event["message"], str):
            self.kill()
            raise GradingError(one_line(event["message"], 1000))
        if event["e"] != "ready":
            self.kill()
            raise _WorkerFailed(("startup", None), "protocol")

    def _read(self) -> None:
        total = 0
        while True:
            line = self.proc.stdout.readline(_MAX_LINE + 1)
            total += len(line)
            if not line:
                self.lines.put(None)
                return
            if len(line) > _MAX_LINE or total > _MAX_OUTPUT:
                self.lines.put("flood")
                return
            self.lines.put(line)

    def next_event(self, activity: tuple[str, Any], timeout: float) -> dict:
        try:
            line = self.lines.get(timeout=max(timeout, 0.01))
        except queue.Empty:
            self.kill()
            raise _WorkerFailed(activity, "timeout") from None
        if line is None:
            raise _WorkerFailed(activity, self._death())
        if line == "flood":
            self.kill()
            raise _WorkerFailed(activity, "protocol")
        try:
            event = wire.loads(line)
        except wire.WireError:
            self.kill()
            raise _WorkerFailed(activity, "protocol") from None
        if event["e"] not in _EVENT_KEYS or set(event) != _EVENT_KEYS[event["e"]] | {"e"}:
            self.kill()
            raise _WorkerFailed(activity, "protocol")
        return event

    def expect(self, kind: str, activity: tuple[str, Any], timeout: float) -> dict:
        event = self.next_event(activity, timeout)
        if event["e"] != kind:
            self.kill()
            raise _WorkerFailed(activity, "protocol")
        return event

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            return "crash"
        if os.name == "posix" and code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            return "cpu"
        if os.name == "posix" and code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
            return "file"
        return "crash"

    def startup_error(self) -> str:
        try:
            self.stderr.seek(0)
            text = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            text = []
        return one_line(text[-1], 300) if text else "no error message"

    def kill(self) -> None:
        if self.proc.poll() is None or os.name == "posix":
            try:
                if os.name == "posix":
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:  # pragma: no cover - Windows
                    self.proc.kill()
            except (ProcessLookupError, PermissionError, OSError):
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        for stream in (self.proc.stdout, self.stderr):
            try:
                stream.close()
            except OSError:
                pass
