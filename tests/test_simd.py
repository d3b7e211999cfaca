"""The SIMD guard of `make test` really changes the arithmetic, and so catches printed rounding noise.

`make notebooks-no-simd` runs the notebooks with NumPy's optional SIMD kernels disabled
(NPY_DISABLE_CPU_FEATURES), generic OpenBLAS kernels and torch without vector code. These tests
show, in a fresh interpreter, that the switch takes effect and that results change in their last bits.
"""

import hashlib
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from ganlib.utils import optional_simd_features

PROBE = """
import hashlib, sys
import numpy as np
try:
    from numpy._core import _multiarray_umath as umath
except ImportError:
    from numpy.core import _multiarray_umath as umath
x = np.random.default_rng(0).uniform(0.1, 10.0, 100_003)
a = np.random.default_rng(1).standard_normal((130, 257))
h = lambda v: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()[:16]
print("enabled", ",".join(f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)))
print("exp", h(np.exp(-x)), "log", h(np.log(x)), "tanh", h(np.tanh(x - 5)))
print("matmul", h(a @ a.T))
"""


def _probe(env_extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE", "ATEN_CPU_CAPABILITY")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**env, **env_extra},
                         capture_output=True, text=True, check=True).stdout.split("\n")
    fields = {}
    for line in out:
        parts = line.split()
        for key, value in zip(parts[::2], parts[1::2]):
            fields[key] = value
    fields.setdefault("enabled", "")
    return fields


def test_optional_features_are_dispatched_ones():
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as umath
    feats = optional_simd_features()
    assert set(feats) <= set(umath.__cpu_dispatch__)
    assert not set(feats) & set(umath.__cpu_baseline__), "baseline features cannot be disabled"
    assert all(umath.__cpu_features__[f] for f in feats)


def test_disabling_the_features_changes_the_arithmetic():
    feats = optional_simd_features()
    if not feats:
        pytest.skip("this CPU has no optional SIMD features that NumPy dispatches to")
    normal, plain = _probe({}), _probe({"NPY_DISABLE_CPU_FEATURES": " ".join(feats)})
    assert normal["enabled"].split(",") == feats and plain["enabled"] == "", plain
    changed = [k for k in ("exp", "log", "tanh") if normal[k] != plain[k]]
    assert changed, "NumPy gave bit-identical exp, log and tanh with and without its SIMD kernels"


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="OpenBLAS core types are x86 names")
def test_generic_openblas_kernels_change_matrix_products():
    normal, generic = _probe({}), _probe({"OPENBLAS_CORETYPE": "Prescott"})
    if normal["matmul"] == generic["matmul"]:
        pytest.skip("this NumPy's BLAS ignores OPENBLAS_CORETYPE (not OpenBLAS, or a single-kernel build)")
    assert normal["matmul"] != generic["matmul"]

