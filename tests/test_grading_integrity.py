"""Grades come from the grading process: forged results, a crashing parser and stalling cells change nothing.

The worker runs the learner's code; the grading process runs the checks and scores them. The
submissions here are chapter-01 notebooks whose answers are wrong (0/12 when graded honestly),
each adding one attack as an attacker would write it.
"""

import json
import subprocess
import sys

import pytest

from conftest import SOLUTIONS, solution_code
from ganlib import grading

WRONG = [
    "import numpy as np",
    "def simultaneous_step(grad, x, y, eta):\n    return x, y",
    "def alternating_step(grad, x, y, eta):\n    return x, y",
    "def extragradient_step(grad, x, y, eta):\n    return x, y",
    "def optimistic_step(grad, x, y, x_prev, y_prev, eta):\n    return x, y",
    "def per_step_factor(rule, eta):\n    return 0.5",
    "CONVERGE = set()\nDIVERGE = set()",
]


def with_attack(attack: str) -> list[str]:
    """The wrong answers, with ``attack`` defined in Q1's answer cell and run when Q1's answer is called."""
    cells = list(WRONG)
    cells[1] = attack + "\n\n" + cells[1].replace("    return x, y", "    _attack()\n    return x, y")
    return cells


def by_key(report):
    return {r.key: r for r in report.results}


@pytest.fixture
def wrong_path(make_notebook):
    return lambda cells: make_notebook(cells, chapter="01")


def test_the_baseline_is_zero(wrong_path):
    """The wrong answers every attack below starts from."""
    report = grading.grade_notebook(wrong_path(WRONG), seed=0)
    assert report.score == 0 and report.total == 12, grading.format_report(report)
    assert not report.misbehaved


REPLACE_EVALUATE = '''
import ganlib.grading as _g
import ganlib.grading.questions as _q

def _passed(self, *answers, rng=None):
    return _q.Result(self.key, self.title, self.points, self.points, "passed", "")

def _attack():
    _g.Question.evaluate = _passed
    _q.Question.evaluate = _passed
    _q.QuestionSpec.result = lambda self, status, feedback="": _q.Result(self.key, self.title, self.points,
                                                                          self.points, "passed", "")

_attack()
'''

# what a worker that judged would have reported after Q1's answer was called: every question passed
_OLD_LINES = '''
def _verdicts():
    lines = [{"e": "result", "key": "q1", "status": "passed", "feedback": ""}]
    for k in range(2, 7):
        lines += [{"e": "q", "key": f"q{k}"}, {"e": "result", "key": f"q{k}", "status": "passed", "feedback": ""}]
    return lines + [{"e": "end"}]
'''

FORGED_LINES = _OLD_LINES + '''
import json, os

def _attack():
    data = "".join(json.dumps(line) + "\\n" for line in _verdicts()).encode()
    for fd in range(3, 64):
        try:
            os.write(fd, data)
        except OSError:
            pass
    os._exit(0)
'''

FORGED_REPLIES = '''
import json, os

def _attack():
    # replies to every request number, claiming the grader's own reference values cannot be checked
    data = "".join(json.dumps({"e": "reply", "id": i, "value": None, "exc": None, "state": []}) + "\\n"
                   for i in range(1, 200)).encode()
    for fd in range(3, 64):
        try:
            os.write(fd, data)
        except OSError:
            pass
'''

FRAME_WALK = _OLD_LINES + '''
import os, sys

def _attack():
    frame = sys._getframe()
    while frame is not None:
        send = frame.f_locals.get("send")
        if callable(send):
            for line in _verdicts():
                send(**line)
            os._exit(0)
        frame = frame.f_back
'''


@pytest.mark.parametrize("attack", [REPLACE_EVALUATE, FORGED_LINES, FORGED_REPLIES, FRAME_WALK],
                         ids=["replace-evaluate", "forged-lines", "forged-replies", "frame-walk"])
def test_forgeries_do_not_raise_the_grade(attack, wrong_path):
    report = grading.grade_notebook(wrong_path(with_attack(attack)), seed=0)
    assert report.total == 12
    assert report.score == 0, grading.format_report(report)
    assert all(r.status != grading.PASSED for r in report.results)


def test_a_forged_evaluate_on_a_right_answer_is_judged_on_the_answer(make_notebook):
    """The forgery does no harm to an honest answer either: its grade comes from its outputs."""
    cells = solution_code("01_minimax_games.ipynb")
    cells.append(REPLACE_EVALUATE)
    report = grading.grade_notebook(make_notebook(cells, chapter="01"), seed=0)
    assert report.score == report.total == 12, grading.format_report(report)


# --------------------------------------------------------------------------- a parser that cannot be crashed

JUNK = {
    "wrong-type-of-e": '{"e": []}\\n',
    "deeply-nested": "[" * 60_000 + "\\n",
    "huge-line": None,   # 100 MB without a newline
    "wrong-field-types": '{"e": "step_done", "i": [], "status": {}, "message": 5}\\n{"e": "reply", "id": "x", '
                         '"value": {"nd": ["object", [1], "AAAA"]}, "exc": [], "state": {}}\\n',
}


def junk_cell(kind: str) -> str:
    payload = "b'x' * (100 * 2**20)" if JUNK[kind] is None else repr(JUNK[kind]) + ".encode()"
    return ("import os\n"
            f"_junk = {payload}\n"
            "for _fd in range(3, 64):\n"
            "    try:\n"
            "        os.write(_fd, _junk)\n"
            "    except OSError:\n"
            "        pass\n")


@pytest.mark.parametrize("kind", sorted(JUNK))
def test_a_malformed_line_is_a_protocol_violation_and_the_batch_is_graded(kind, tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    bad = with_attack("def _attack():\n    pass")
    bad[2] = junk_cell(kind) + "\n" + bad[2]   # in the cell that answers Q2
    from conftest import notebook_dict

    (folder / "a_01.ipynb").write_text(json.dumps(notebook_dict(bad, chapter="01")))
    (folder / "b_01.ipynb").write_text((SOLUTIONS / "01_minimax_games.ipynb").read_text())
    out = subprocess.run([sys.executable, "-m", "ganlib", "grade", "--json", "--seed", "0", str(folder)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 3, out.stdout[-3000:] + out.stderr[-3000:]
    data = json.loads(out.stdout)
    assert data["not_graded"] == {}
    reports = {r["path"].rsplit("/", 1)[-1]: r for r in data["notebooks"]}
    assert set(reports) == {"a_01.ipynb", "b_01.ipynb"}
    good, broken = reports["b_01.ipynb"], reports["a_01.ipynb"]
    assert good["score"] == good["total"] == 12 and good["misbehaved"] == []
    assert len(broken["questions"]) == 6 and broken["score"] == 0
    assert broken["misbehaved"] and "protocol violation" in broken["misbehaved"][0]
    assert "cell" in broken["misbehaved"][0]   # where it happened
    q2 = {q["key"]: q for q in broken["questions"]}["q2"]
    assert q2["status"] in (grading.ERROR, grading.FAILED)


def test_the_text_report_names_the_violation(make_notebook, capsys):
    from ganlib.cli.grade import main

    bad = with_attack("def _attack():\n    pass")
    bad[2] = junk_cell("wrong-type-of-e") + "\n" + bad[2]
    code = main([str(make_notebook(bad, chapter="01")), "--seed", "0"])
    text = " ".join(capsys.readouterr().out.split())
    assert code == 3
    assert "WARNING: protocol violation" in text


def test_help_documents_exit_code_3_and_the_notebook_time_limit():
    out = subprocess.run([sys.executable, "-m", "ganlib", "grade", "--help"], capture_output=True, text=True).stdout
    text = " ".join(out.split())
    assert "3 when a submission misbehaved" in text and "--timeout" in text and "default 300 s" in text


# --------------------------------------------------------------------------- a wall-clock limit per notebook

SLEEPING = "import time\ntime.sleep(9.5)\n"
IGNORE_ALARM = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"


def test_cells_that_sleep_and_ignore_alarms_cannot_outlive_the_notebook_limit(make_notebook):
    cells = solution_code("01_minimax_games.ipynb")
    names = ["simultaneous_step", "alternating_step", "extragradient_step", "optimistic_step"]
    for name in names:   # four answer cells that sleep 9.5 s each, every time a worker loads the notebook
        i = next(i for i, c in enumerate(cells) if f"def {name}(" in c)
        cells[i] = SLEEPING + cells[i]
    # one cell that ignores SIGALRM and never finishes loading (first, so the grader gets past it)...
    i = next(i for i, c in enumerate(cells) if "CONVERGE" in c and "=" in c)
    cells[i] = IGNORE_ALARM + "time_spent = 0\nwhile True:\n    time_spent += 1\n" + cells[i]
    cells.insert(0, cells.pop(i))
    # ...and an answer that ignores SIGALRM when called
    i = next(i for i, c in enumerate(cells) if "def per_step_factor(" in c)
    cells[i] = IGNORE_ALARM + ("def per_step_factor(rule, eta):\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                                "    while True:\n        pass\n")
    path = make_notebook(cells, chapter="01")
    limit = 60
    script = ("import json, sys\nfrom ganlib import grading\n"
              f"r = grading.grade_notebook(sys.argv[1], seed=0, notebook_timeout={limit})\n"
              "print(json.dumps(r.to_dict()))\n")
    # the worker is killed when the notebook's time is up, whatever its cells do with SIGALRM
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                         timeout=limit + 20)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    res = {q["key"]: q for q in report["questions"]}
    assert all(res[k]["status"] == grading.PASSED for k in ("q1", "q2", "q3", "q4")), res   # graded before the limit
    assert res["q5"]["status"] == grading.TIMEOUT and "time limit (60 s)" in res["q5"]["feedback"], res["q5"]
    assert res["q6"]["status"] == grading.TIMEOUT, res["q6"]
    assert any("grading stopped after 60 s" in p for p in report["problems"]), report["problems"]


# --------------------------------------------------------------------------- the data format itself


def test_the_wire_format_round_trips_data_and_rejects_everything_else():
    import numpy as np
    import torch

    from ganlib.grading import wire

    value = (1, -2.5, float("inf"), complex(1, -2), "text", b"\x00\xff", [None, True], {"a": {3, 4}, 7: frozenset()},
             np.arange(6, dtype=np.int16).reshape(2, 3), np.float32(1.5), torch.ones(2, 2, dtype=torch.float64))
    back = wire.decode(json.loads(wire.dumps({"v": wire.encode(value)}))["v"])
    assert back[:8] == value[:8] and back[9] == value[9] and back[9].dtype == np.float32
    assert np.array_equal(back[8], value[8]) and back[8].dtype == np.int16
    assert torch.equal(back[10], value[10]) and back[10].dtype == torch.float64
    with pytest.raises(wire.NotData):
        wire.encode(np.array([object()]))
    with pytest.raises(wire.NotData):
        wire.encode(object())
    bad = [
        {"nd": ["object", [1], "AAAA"]},                 # a dtype outside the allowlist
        {"nd": ["float64", [2], "AAAAAAAAAAA="]},        # bytes that do not match the shape
        {"nd": ["float64", [-1], ""]},                   # a negative size
        {"f": "1e999"},                                  # not a special float
        {"x": 1},                                        # an unknown tag
        {"t": [1], "s": [2]},                            # two tags
        {"b": "not base64!"},
        {"d": [[[1], 2]]},                               # an unhashable key
        "x" * (wire.MAX_STR + 1),
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    ]
    for data in bad:
        with pytest.raises(wire.WireError):
            wire.decode(data)
    for line in (b'{"e": []}', b"[" * 60_000, b"\xff\xfe", b'{"e": "x", "v": NaN}', b"[]", b"1e5"):
        with pytest.raises(wire.WireError):
            wire.loads(line)


def test_arguments_changed_in_place_come_back_and_nothing_else_does():
    """Copy-restore: what the learner's code does to an argument is seen by the check, as in a notebook."""
    import numpy as np

    q = grading.Question("q1", "in place", 1, ("step",), lambda rng, step: _in_place_check(step))
    cells = ["def step(x):\n    x *= 2\n    x[0] = -1\n    return None"]
    assert q.evaluate(_local(cells[0])).status == grading.PASSED       # in this process
    from ganlib.grading import remote

    server = remote.Server({"step": _local(cells[0])})
    replies = []

    def request(message):
        reply = server.handle(json.loads(json.dumps(message)))
        replies.append(reply)
        return json.loads(json.dumps(reply))

    session = remote.Session(request, lambda: 10.0)
    (proxy,) = session.answers(["step"])
    assert q.evaluate(proxy).status == grading.PASSED                  # through the worker's protocol
    x = np.arange(3.0)
    untouched = np.ones(2)
    proxy(x)
    assert x.tolist() == [-1.0, 2.0, 4.0]
    session.call(["n", "step"], (np.arange(2.0),), {})
    assert replies[-1]["state"][0] is not None
    session._send("beside", None, (np.sum, (untouched,), {}))
    assert replies[-1]["state"] == [None] and untouched.tolist() == [1.0, 1.0]   # unchanged: nothing sent back


def _local(source):
    ns = {}
    exec(source, ns)
    return ns["step"]


def _in_place_check(step):
    import numpy as np

    x = np.arange(3.0)
    step(x)
    if x.tolist() != [-1.0, 2.0, 4.0]:
        raise grading.CheckFailed(f"x = {x.tolist()}")


# --------------------------------------------------------------------------- the same attacks, graded in the sandbox

ESCAPES = '''
def _attack():
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount(None, b"/", None, 32 | 4096, None)          # MS_REMOUNT | MS_BIND: make / writable
    for target in (b"/tmp", os.path.expanduser("~").encode()):
        libc.umount2(target, 2)                              # MNT_DETACH: uncover the host's folders
    for path in {targets!r}:
        try:
            with open(path, "w") as f:
                f.write("import ganlib.grading.questions as q\\nq.PASSED = q.FAILED\\n")
        except OSError:
            pass
'''


@pytest.mark.skipif(bool(grading.sandbox_problem()), reason=f"needs bubblewrap: {grading.sandbox_problem()}")
def test_escapes_graded_in_the_sandbox_touch_nothing_and_change_no_grade(make_notebook, tmp_path, monkeypatch):
    """Remount /, unmount /tmp and home, plant sitecustomize.py in the start folder and write to the host's
    /tmp, from an answer cell graded with ``sandbox=True``: every call fails, the grade stays 0, and a later
    grading from the same folder is not affected."""
    import os
    import uuid

    start = tmp_path / "start"
    start.mkdir()
    monkeypatch.chdir(start)
    host_tmp = f"/tmp/ganlib-escape-{uuid.uuid4().hex}"
    targets = [str(start / "sitecustomize.py"), host_tmp, str(start / "written.txt")]
    path = make_notebook(with_attack(ESCAPES.format(targets=targets)), chapter="01")
    try:
        report = grading.grade_notebook(path, seed=0, sandbox=True)
        assert report.sandboxed and report.score == 0, grading.format_report(report)
        assert not any(os.path.exists(t) for t in targets)
        again = grading.grade_notebook(make_notebook(solution_code("01_minimax_games.ipynb"), chapter="01"),
                                       seed=0, sandbox=True)
        assert again.score == again.total == 12, grading.format_report(again)
        # the control: unsandboxed, the same cell does write on the host (the attack is real), and the
        # planted sitecustomize.py still does not reach later workers (their import path leaves out the start folder)
        plain = grading.grade_notebook(path, seed=0, sandbox=False)
        assert plain.score == 0 and os.path.exists(targets[0]) and os.path.exists(host_tmp)
        later = grading.grade_notebook(make_notebook(solution_code("01_minimax_games.ipynb"), chapter="01"),
                                       seed=0, sandbox=False)
        assert later.score == later.total == 12, grading.format_report(later)
    finally:
        for t in targets:
            if os.path.exists(t):
                os.remove(t)
