"""The plain-data format in which a grading worker answers the grader (chapter 00).

The worker runs the learner's code; everything it sends back is *data* in this format, one
JSON value per line, which the grading process checks strictly before it uses it. Nothing is
unpickled or evaluated. :func:`encode` (worker side) turns a Python value into JSON-ready data;
:func:`decode` (grader side) turns it back, raising :class:`WireError` on anything malformed,
oversized, too deeply nested or of a type it does not know.

===============================  =====================================================
Python value                     JSON form
===============================  =====================================================
None, bool, int, str             themselves (str at most ``MAX_STR`` characters)
float                            a number; NaN and infinities as ``{"f": "nan"}`` etc.
complex                          ``{"c": [re, im]}``
tuple, set, frozenset            ``{"t": [...]}``, ``{"s": [...]}``, ``{"fs": [...]}``
list                             a JSON list
dict (str, int or float keys)    ``{"d": [[key, value], ...]}``
bytes                            ``{"b": base64}``
NumPy array / scalar             ``{"nd": [dtype, shape, base64]}`` / ``{"ns": [dtype, base64]}``
torch tensor                     ``{"pt": [dtype, shape, base64, grad_ref]}``
===============================  =====================================================

Array dtypes come from an allowlist (bool, integers, floats, complex); array bytes count
against ``MAX_BYTES`` per message. Two more forms exist only inside :mod:`ganlib.grading.remote`:
``{"mod": ...}`` (a module built from standard ``torch.nn`` layers, rebuilt by the grader) and
``{"h": ...}`` (an object that stays in the worker, used through remote calls).

Examples
--------
>>> decode(json.loads(json.dumps(encode((1, [2.5, float("nan")], {"a": None})))))
(1, [2.5, nan], {'a': None})
"""

from __future__ import annotations

import base64
import json
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

MAX_STR = 100_000            # characters of one string
MAX_BYTES = 48 * 2**20       # bytes of arrays and tensors in one message
MAX_ITEMS = 2_000_000        # values in one message
MAX_DEPTH = 40               # nesting of lists, tuples and dicts
MAX_DIMS = 8
NUMPY_DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64",
                "float16", "float32", "float64", "complex64", "complex128")
TORCH_DTYPES = {"bool": "bool", "uint8": "uint8", "int8": "int8", "int16": "int16", "int32": "int32",
                "int64": "int64", "float16": "float16", "float32": "float32", "float64": "float64",
                "complex64": "complex64", "complex128": "complex128", "bfloat16": None}


class WireError(ValueError):
    """A message from the worker is not well-formed data (the submission broke the protocol)."""


class NotData(TypeError):
    """A value has no plain-data form (the worker then keeps it and sends a handle)."""


# --------------------------------------------------------------------------- worker side


def encode(value: Any, hook: Callable[[Any], Any] | None = None, _state: dict | None = None) -> Any:
    """``value`` as JSON-ready data; ``hook(value)`` is asked first and returns ``NotImplemented`` to pass.

    Raises :class:`NotData` for a value without a plain-data form (and no hook that takes it).
    """
    state = _state if _state is not None else {"bytes": 0, "items": 0, "depth": 0}
    state["items"] += 1
    if state["items"] > MAX_ITEMS:
        raise NotData("too many values")
    if hook is not None:
        out = hook(value)
        if out is not NotImplemented:
            return out
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and type(value) in (int,):
        return value
    if isinstance(value, float) and type(value) is float:
        return value if math.isfinite(value) else {"f": repr(value)}
    if isinstance(value, str) and type(value) is str:
        if len(value) > MAX_STR:
            raise NotData("a string too long")
        return value
    if type(value) is complex:
        return {"c": [encode(value.real), encode(value.imag)]}
    if type(value) in (bytes, bytearray):
        state["bytes"] += len(value)
        if state["bytes"] > MAX_BYTES:
            raise NotData("too many bytes")
        return {"b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, np.generic) and str(value.dtype) in NUMPY_DTYPES:
        return {"ns": [str(value.dtype), base64.b64encode(np.asarray(value).tobytes()).decode()]}
    if type(value) is np.ndarray:
        return {"nd": _array(value, state)}
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor) and type(value) in (torch.Tensor, torch.nn.Parameter):
        t = value.detach()
        if t.layout != torch.strided or t.device.type != "cpu" or str(t.dtype).replace("torch.", "") not in TORCH_DTYPES:
            raise NotData("a tensor that is not a dense CPU tensor of a plain dtype")
        name = str(t.dtype).replace("torch.", "")
        arr = (t.float() if name == "bfloat16" else t).contiguous().numpy()
        return {"pt": [name, *_array(arr, state)[1:], None]}
    state["depth"] += 1
    if state["depth"] > MAX_DEPTH:
        raise NotData("nested too deeply")
    try:
        if type(value) is list:
            return [encode(v, hook, state) for v in value]
        if type(value) is tuple:
            return {"t": [encode(v, hook, state) for v in value]}
        if type(value) in (set, frozenset):
            return {"s" if type(value) is set else "fs": [encode(v, hook, state) for v in value]}
        if type(value) is dict:
            if not all(type(k) in (str, int, float) for k in value):
                raise NotData("a dict with keys that are not strings or numbers")
            return {"d": [[encode(k, None, state), encode(v, hook, state)] for k, v in value.items()]}
    finally:
        state["depth"] -= 1
    raise NotData(f"a {type(value).__name__}")


def _array(arr: np.ndarray, state: dict) -> list:
    if str(arr.dtype) not in NUMPY_DTYPES or arr.ndim > MAX_DIMS:
        raise NotData(f"an array of dtype {arr.dtype}")
    data = np.ascontiguousarray(arr).tobytes()
    state["bytes"] += len(data)
    if state["bytes"] > MAX_BYTES:
        raise NotData(f"arrays larger than {MAX_BYTES // 2**20} MB")
    return [str(arr.dtype), list(arr.shape), base64.b64encode(data).decode()]


def dumps(message: dict) -> str:
    """One line of JSON (no NaN tokens: they travel as ``{"f": ...}``)."""
    return json.dumps(message, allow_nan=False, separators=(",", ":"))


# --------------------------------------------------------------------------- grader side


def _no_constant(name: str):
    raise WireError(f"the number {name} is not allowed in a message")


def loads(line: bytes | str) -> dict:
    """Parse one line from the worker into a dict with a string ``"e"``; any failure is a :class:`WireError`."""
    try:
        if isinstance(line, bytes):
            line = line.decode("utf-8")
        if _depth(line) > MAX_DEPTH + 10:
            raise WireError("a message nested too deeply")
        event = json.loads(line, parse_constant=_no_constant)
    except WireError:
        raise
    except Exception as exc:  # noqa: BLE001 - ValueError, RecursionError, UnicodeDecodeError...: all malformed
        raise WireError(f"a line that is not JSON ({type(exc).__name__})") from None
    if not isinstance(event, dict) or not isinstance(event.get("e"), str):
        raise WireError("a line that is not an event")
    return event


def _depth(text: str) -> int:
    """The deepest nesting of brackets in a JSON text (strings skipped), without recursion."""
    depth = deepest = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def decode(data: Any, hook: Callable[[str, Any], Any] | None = None, _state: dict | None = None) -> Any:
    """The Python value of ``data`` (see the module docstring); :class:`WireError` when it is not well-formed.

    ``hook(tag, payload)`` decodes the tags ``"mod"``, ``"h"`` and tensors with a gradient reference.
    """
    state = _state if _state is not None else {"bytes": 0, "items": 0, "depth": 0}
    state["items"] += 1
    if state["items"] > MAX_ITEMS:
        raise WireError("a message with too many values")
    if data is None or isinstance(data, (bool, int)):
        return data
    if isinstance(data, float):
        return data
    if isinstance(data, str):
        if len(data) > MAX_STR:
            raise WireError("a string that is too long")
        return data
    state["depth"] += 1
    if state["depth"] > MAX_DEPTH:
        raise WireError("a message nested too deeply")
    try:
        if isinstance(data, list):
            return [decode(v, hook, state) for v in data]
        if not isinstance(data, dict) or len(data) != 1:
            raise WireError("a value of unknown form")
        (tag, payload), = data.items()
        if tag == "f":
            if payload not in ("nan", "inf", "-inf"):
                raise WireError("a malformed special float")
            return float(payload)
        if tag == "c":
            re_, im = _list(payload, 2)
            if not all(isinstance(v, (int, float, dict)) and not isinstance(v, bool) for v in (re_, im)):
                raise WireError("a malformed complex number")
            return complex(decode(re_, None, state), decode(im, None, state))
        if tag in ("t", "s", "fs"):
            items = [decode(v, hook, state) for v in _list(payload)]
            if tag == "t":
                return tuple(items)
            try:
                return set(items) if tag == "s" else frozenset(items)
            except TypeError:
                raise WireError("a set of unhashable values") from None
        if tag == "d":
            out = {}
            for pair in _list(payload):
                k, v = _list(pair, 2)
                if not isinstance(k, (str, int, float)) or isinstance(k, bool):
                    raise WireError("a dict key that is not a string or a number")
                out[k] = decode(v, hook, state)
            return out
        if tag == "b":
            return _b64(payload, state)
        if tag == "ns":
            dtype, raw = _list(payload, 2)
            arr = _from_bytes(dtype, [], raw, state)
            return arr[()]
        if tag == "nd":
            dtype, shape, raw = _list(payload, 3)
            return _from_bytes(dtype, shape, raw, state)
        if tag == "pt":
            dtype, shape, raw, ref = _list(payload, 4)
            if dtype not in TORCH_DTYPES:
                raise WireError("a tensor of a dtype that is not allowed")
            arr = _from_bytes("float32" if dtype == "bfloat16" else dtype, shape, raw, state)
            import torch

            t = torch.from_numpy(arr.copy())
            if dtype == "bfloat16":
                t = t.to(torch.bfloat16)
            if ref is not None:
                if hook is None or not isinstance(ref, int) or isinstance(ref, bool):
                    raise WireError("a malformed gradient reference")
                return hook("grad", (t, ref))
            return t
        if tag in ("mod", "h") and hook is not None:
            return hook(tag, payload)
        raise WireError(f"an unknown tag {tag[:20]!r}")
    finally:
        state["depth"] -= 1


def _list(payload: Any, n: int | None = None) -> list:
    if not isinstance(payload, list) or (n is not None and len(payload) != n):
        raise WireError("a malformed value")
    return payload


def _b64(raw: Any, state: dict) -> bytes:
    if not isinstance(raw, str) or len(raw) > MAX_BYTES * 4 // 3 + 8:
        raise WireError("malformed bytes")
    try:
        data = base64.b64decode(raw.encode("ascii"), validate=True)
    except Exception:  # noqa: BLE001 - binascii.Error, UnicodeEncodeError
        raise WireError("malformed base64") from None
    state["bytes"] += len(data)
    if state["bytes"] > MAX_BYTES:
        raise WireError(f"arrays larger than {MAX_BYTES // 2**20} MB in one message")
    return data


def _from_bytes(dtype: Any, shape: Any, raw: Any, state: dict) -> np.ndarray:
    if dtype not in NUMPY_DTYPES:
        raise WireError("an array of a dtype that is not allowed")
    if (not isinstance(shape, list) or len(shape) > MAX_DIMS
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_BYTES for s in shape)):
        raise WireError("an array with a malformed shape")
    data = _b64(raw, state)
    dt = np.dtype(dtype)
    if math.prod(shape) * dt.itemsize != len(data):
        raise WireError("an array whose bytes do not match its shape")
    return np.frombuffer(data, dtype=dt).reshape(shape).copy()
