"""No test asserts elapsed or CPU seconds.

A test that compares seconds against a number passes on one machine and fails on a slower or busier
one (CI's two shared cores): it blocks a change at random. Tests pin what keeps the code fast (what
is computed, how many times, on how much data; a worker killed, a connection never attempted) and
the seconds go to ``benchmarks/``. A ``timeout=`` that stops a hung subprocess is fine: it asserts
nothing about speed.

The check reads every ``tests/*.py`` with :mod:`ast` and reports each ``assert`` that orders
(``<``, ``<=``, ``>``, ``>=``) a timing quantity: a clock read (``time.perf_counter()``,
``time.time()``, ``time.monotonic()``, ``time.process_time()``, their ``_ns`` forms,
``resource.getrusage()``), a variable computed from one (``start = time.monotonic()``,
``elapsed[k] = time.monotonic() - start``), or a name or key that says it holds seconds
(``elapsed``, ``seconds``, ``duration``, ``..._s``, ``..._secs``; not a rate, ``..._per_s``).
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
CLOCKS = {"perf_counter", "perf_counter_ns", "time", "time_ns", "monotonic", "monotonic_ns", "process_time",
          "process_time_ns", "thread_time", "thread_time_ns", "getrusage"}
CLOCK_MODULES = {"time", "resource"}
SECONDS_WORD = re.compile(r"elapsed|seconds|duration|_secs?$|(?<!_per)_s$", re.IGNORECASE)  # not a rate: per_s
ORDER = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def _is_clock_call(node: ast.AST, imported: set[str]) -> bool:
    """``time.perf_counter()``, ``resource.getrusage(...)``, or ``perf_counter()`` imported from time."""
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    if isinstance(f, ast.Attribute) and f.attr in CLOCKS and isinstance(f.value, ast.Name):
        return f.value.id in CLOCK_MODULES
    return isinstance(f, ast.Name) and f.id in imported


def _target_names(target: ast.AST) -> set[str]:
    """The variables an assignment target binds or changes: ``x``, ``x[k]``, ``x.a``, ``a, b``."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Subscript, ast.Attribute, ast.Starred)):
        return _target_names(target.value)
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(_target_names(t) for t in target.elts))
    return set()


def _says_seconds(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return bool(SECONDS_WORD.search(node.id))
    if isinstance(node, ast.Attribute):
        return bool(SECONDS_WORD.search(node.attr))
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return bool(SECONDS_WORD.search(node.slice.value))
    return False


def timing_asserts(source: str) -> list[tuple[int, str]]:
    """``(line, code)`` of every ``assert`` in ``source`` that orders a timing quantity.

    Examples
    --------
    >>> timing_asserts("import time\\nt0 = time.perf_counter()\\nassert time.perf_counter() - t0 < 5\\n")
    [(3, 'assert time.perf_counter() - t0 < 5')]
    >>> timing_asserts("assert len(history) <= 9\\n")
    []
    """
    tree = ast.parse(source)
    imported = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module in CLOCK_MODULES for a in node.names if a.name in CLOCKS}
    found = []
    scopes = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    scopes.append(ast.Module(body=[n for n in tree.body if n not in scopes], type_ignores=[]))
    for scope in scopes:
        nodes = list(ast.walk(scope))
        tainted: set[str] = set()

        def timing(expr: ast.AST) -> bool:
            return any(_is_clock_call(n, imported) or (isinstance(n, ast.Name) and n.id in tainted)
                       or _says_seconds(n) for n in ast.walk(expr))

        changed = True
        while changed:  # a variable computed from a clock read, directly or through others
            changed = False
            for node in nodes:
                new: set[str] = set()
                if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if timing(node.value):
                        new = set().union(*(_target_names(t) for t in targets))
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and any(
                        timing(a) for a in [*node.args, *(k.value for k in node.keywords)]):
                    new = _target_names(node.func.value)  # times.append(time.perf_counter() - start)
                new -= tainted
                tainted |= new
                changed |= bool(new)
        for node in nodes:
            if isinstance(node, ast.Assert):
                for cmp in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
                    if any(isinstance(op, ORDER) for op in cmp.ops) and any(
                            timing(e) for e in [cmp.left, *cmp.comparators]):
                        found.append((node.lineno, ast.get_source_segment(source, node).splitlines()[0]))
                        break
    return sorted(set(found))


def test_no_test_asserts_elapsed_or_cpu_seconds():
    offenders = [f"tests/{path.name}:{line}: {code}" for path in sorted(TESTS.glob("*.py"))
                 for line, code in timing_asserts(path.read_text())]
    assert not offenders, ("tests must not assert wall-clock or CPU seconds (they fail on a slower or busier "
                           "machine); test what keeps the code fast and move the seconds to benchmarks/:\n"
                           + "\n".join(offenders))


@pytest.mark.parametrize("source", [
    "import time\nstart = time.monotonic()\nrun()\nassert time.monotonic() - start < 60\n",
    "import time\nt0 = time.perf_counter()\nrun()\nelapsed = time.perf_counter() - t0\nassert elapsed < 3.0\n",
    "from time import perf_counter as clock\nt = clock()\nassert clock() - t <= 1\n",
    "import time\ntimes = {}\nfor k in ks:\n    s = time.process_time()\n    f(k)\n"
    "    times[k] = time.process_time() - s\nassert max(times.values()) < limit\n",
    "import time\nel = {}\nfor j in (1, 2):\n    s = time.monotonic()\n    el[j] = time.monotonic() - s\n"
    "assert el[1] - el[2] > 2, el\n",
    "import time\nts = []\nfor _ in range(5):\n    s = time.perf_counter()\n    f()\n"
    "    ts.append(time.perf_counter() - s)\nassert min(ts) < 0.02\n",
    "def test(runs):\n    assert runs['spawn_s'] < 60\n",
    "def test(report):\n    assert report.seconds >= 0.4 and report.ok\n",
    "import resource\nu = resource.getrusage(resource.RUSAGE_SELF).ru_utime\nassert u < 2\n",
    "class TestX:\n    def test(self):\n        import time\n        t = time.time()\n        assert time.time() - t < 1\n",
])
def test_the_check_finds_timing_asserts(source):
    assert len(timing_asserts(source)) == 1, source


@pytest.mark.parametrize("source", [
    # a hang guard is not a speed assertion
    "import subprocess\np = subprocess.run(cmd, timeout=240)\nassert p.returncode == 0\n",
    # a deadline loop waits for an event; the assert is about the event
    "import time\ndeadline = time.monotonic() + 90\nwhile not done() and time.monotonic() < deadline:\n"
    "    time.sleep(0.1)\nassert done()\n",
    # counts, sizes and steps are not seconds
    "assert 2 <= len(h) <= 9\nassert calls['f'] <= 50 and largest < 20_000\nassert h['step'][-1] > 3\n",
    # a rate is not a duration
    "assert h['samples_per_s'][0] > 0\n",
    # a clock in one test does not taint a name in another
    "import time\ndef test_a():\n    start = time.time()\ndef test_b(start):\n    assert start < 3\n",
])
def test_the_check_leaves_other_asserts_alone(source):
    assert timing_asserts(textwrap.dedent(source)) == [], source
