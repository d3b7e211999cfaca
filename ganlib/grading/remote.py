"""Learner code as remote calls: the grader holds the verdict, the worker only executes (chapter 00).

A chapter's checks (``ganlib.checks.chNN``) run in the grading process. Each learner definition
a question needs is replaced there by a stand-in:

- a function or class becomes a :class:`FunctionProxy`: calling it sends the arguments to the
  worker, which calls the learner's object and answers with the result as plain data
  (:mod:`ganlib.grading.wire`);
- a constant becomes its value, decoded from plain data;
- a result that is not data either comes back rebuilt (a module made only of standard
  ``torch.nn`` layers, with its hyperparameters and weights) or stays in the worker as a
  :class:`Handle`, whose calls and attributes are again remote.

Arguments travel from the grader to the worker as a pickle (the grader is trusted; the worker
unpickles). Modules, optimisers and the checks' own recording objects passed to the learner's
code are copied back after each call (parameters, buffers, gradients, optimiser state, the
attributes a class lists in ``_ganlib_sync``), so a check sees what the learner's code did to
them. A tensor result that depends on tensors the grader sent with ``requires_grad`` is
differentiable in the grader: its backward pass asks the worker for the vector-Jacobian
product. An exception raised by learner code comes back as its type's name, its message and its
traceback lines; the grader raises a builtin exception of that name (or a stand-in).
Nothing the worker sends is a verdict: the checks compare the outputs and the grader scores them.

About 850 lines: both ends of each request (:class:`Session` in the grader, :class:`Server` in the
worker) live in this one module, so that a change to one side is made beside the other.
"""

from __future__ import annotations

import base64
import importlib
import io
import math
import pickle
import re
import sys
import traceback
from typing import Any

import numpy as np

from ganlib.grading import wire
from ganlib.grading.questions import CheckFailed, _Timeout

# --------------------------------------------------------------------------- exceptions that travel

_BUILTIN_ERRORS = {
    "Exception", "ArithmeticError", "AssertionError", "AttributeError", "BufferError", "EOFError", "FileExistsError",
    "FileNotFoundError", "FloatingPointError", "ImportError", "IndexError", "IsADirectoryError", "KeyError",
    "LookupError", "MemoryError", "ModuleNotFoundError", "NameError", "NotADirectoryError", "NotImplementedError",
    "OSError", "OverflowError", "PermissionError", "RecursionError", "RuntimeError", "StopIteration", "TypeError",
    "UnboundLocalError", "UnicodeDecodeError", "UnicodeError", "ValueError", "ZeroDivisionError",
}
_OTHER_ERRORS = {("struct", "error"): ("struct", "error"), ("_pickle", "UnpicklingError"): ("pickle", "UnpicklingError"),
                 ("pickle", "UnpicklingError"): ("pickle", "UnpicklingError"),
                 ("ganlib.grading.questions", "CheckFailed"): ("ganlib.grading.questions", "CheckFailed")}
_NAME = re.compile(r"[A-Za-z_]\w{0,80}")


class ProtocolBroken(BaseException):
    """The worker's answer is not well-formed (a BaseException: no check may catch it)."""


class RemoteError(Exception):
    """Stands for an exception of a type the grader does not recreate (its ``__name__`` is the original's)."""


_stand_ins: dict[str, type] = {}


def _exception_class(module: str, name: str) -> type:
    if module == "builtins" and name in _BUILTIN_ERRORS:
        return getattr(__import__("builtins"), name)
    if (module, name) in _OTHER_ERRORS:
        mod, attr = _OTHER_ERRORS[(module, name)]
        return getattr(importlib.import_module(mod), attr)
    if name not in _stand_ins:
        _stand_ins[name] = type(name, (RemoteError,), {})
    return _stand_ins[name]


def _raise_remote(info: Any, memory_mb: float | None = None) -> None:
    if not isinstance(info, dict):
        raise wire.WireError("a malformed exception")
    if info.get("timeout") is True and len(info) == 1:
        raise _Timeout()
    keys = {"module", "type", "message", "frames", "names", "errno"}
    if set(info) != keys:
        raise wire.WireError("a malformed exception")
    module, name, message = info["module"], info["type"], info["message"]
    if not (isinstance(module, str) and isinstance(name, str) and _NAME.fullmatch(name) and isinstance(message, str)
            and len(message) <= 2000 and len(module) <= 200):
        raise wire.WireError("a malformed exception")
    frames = info["frames"]
    if not isinstance(frames, list) or len(frames) > 60:
        raise wire.WireError("a malformed traceback")
    summaries = []
    for f in frames:
        if (not isinstance(f, list) or len(f) != 4 or not isinstance(f[0], str) or not isinstance(f[1], int)
                or not isinstance(f[2], str) or not isinstance(f[3], str)):
            raise wire.WireError("a malformed traceback")
        summaries.append(traceback.FrameSummary(f[0][:300], f[1], f[2][:100], line=f[3][:300]))
    names = info["names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) > 200:
        raise wire.WireError("a malformed traceback")
    cls = _exception_class(module, name)
    try:
        exc = cls(message)
    except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError needs five arguments
        exc = _exception_class("", name)(message)
    if isinstance(info["errno"], int) and isinstance(exc, OSError):
        exc.errno = info["errno"]
    exc._ganlib_frames = summaries
    exc._ganlib_names = tuple(names)
    exc._ganlib_memory_mb = memory_mb
    raise exc


def describe_error(exc: BaseException) -> dict:
    """An exception raised in the worker, as plain data (worker side)."""
    from ganlib.grading.questions import one_line

    frames = traceback.extract_tb(exc.__traceback__)[-60:]
    tb, code = exc.__traceback__, None
    while tb is not None:
        code = tb.tb_frame.f_code
        tb = tb.tb_next
    cls = type(exc)
    name = cls.__name__ if _NAME.fullmatch(cls.__name__ or "") else "Exception"
    return {"module": str(cls.__module__)[:200], "type": name, "message": one_line(str(exc), 2000),
            "frames": [[str(f.filename)[:300], int(f.lineno or 0), str(f.name)[:100], str(f.line or "")[:300]]
                       for f in frames],
            "names": [str(n) for n in (code.co_names if code is not None else ())][:200],
            "errno": exc.errno if isinstance(exc, OSError) and isinstance(exc.errno, int) else None}


# --------------------------------------------------------------------------- modules rebuilt from standard layers

_BIAS = object()
MODULE_ARGS: dict[str, tuple] = {
    "Sequential": (), "ModuleList": (), "Identity": (), "Tanh": (), "Sigmoid": (),
    "Linear": ("in_features", "out_features", _BIAS),
    "Conv1d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", _BIAS,
               "padding_mode"),
    "Conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", _BIAS,
               "padding_mode"),
    "ConvTranspose1d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "groups",
                        _BIAS, "dilation", "padding_mode"),
    "ConvTranspose2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "groups",
                        _BIAS, "dilation", "padding_mode"),
    "BatchNorm1d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "BatchNorm2d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "InstanceNorm2d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "LayerNorm": ("normalized_shape", "eps", "elementwise_affine", _BIAS),
    "LeakyReLU": ("negative_slope", "inplace"), "ReLU": ("inplace",), "ELU": ("alpha", "inplace"),
    "SiLU": ("inplace",), "GELU": ("approximate",), "Softplus": ("beta", "threshold"),
    "Flatten": ("start_dim", "end_dim"), "Unflatten": ("dim", "unflattened_size"),
    "Dropout": ("p", "inplace"), "Dropout2d": ("p", "inplace"),
    "Embedding": ("num_embeddings", "embedding_dim", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq",
                  "sparse"),
}


def _arg_ok(v: Any, depth: int = 0) -> bool:
    if v is None or isinstance(v, (bool, int, float)):
        return not isinstance(v, int) or abs(v) < 2**31
    if isinstance(v, str):
        return len(v) <= 20
    if isinstance(v, (tuple, list)) and depth == 0:
        return len(v) <= 8 and all(_arg_ok(x, 1) for x in v)
    return False


def describe_module(m: Any, encode_tensor) -> dict | None:
    """A module built only from standard layers as plain data, or None (worker side)."""
    import torch

    name = type(m).__name__
    if name not in MODULE_ARGS or getattr(torch.nn, name, None) is not type(m):
        return None
    if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or getattr(m, "_backward_pre_hooks", None):
        return None
    args = {}
    for a in MODULE_ARGS[name]:
        if a is _BIAS:
            args["bias"] = getattr(m, "bias", None) is not None
        else:
            args[a] = getattr(m, a)
    children = []
    for child_name, child in m.named_children():
        d = describe_module(child, encode_tensor)
        if d is None:
            return None
        children.append([child_name, d])
    params = [[n, None if p is None else encode_tensor(p), bool(p is not None and p.requires_grad)]
              for n, p in m._parameters.items()]
    buffers = [[n, None if b is None else encode_tensor(b)] for n, b in m._buffers.items()]
    return {"cls": name, "args": wire.encode(args), "training": bool(m.training), "children": children,
            "params": params, "buffers": buffers}


def rebuild_module(d: Any, depth: int = 0):
    """The module described by :func:`describe_module`, built from ``torch.nn`` classes of the allowlist."""
    import torch

    if depth > 30 or not isinstance(d, dict) or set(d) != {"cls", "args", "training", "children", "params", "buffers"}:
        raise wire.WireError("a malformed module")
    name = d["cls"]
    if name not in MODULE_ARGS or not isinstance(d["training"], bool):
        raise wire.WireError("a module of a class that is not allowed")
    args = wire.decode(d["args"])
    want = {"bias" if a is _BIAS else a for a in MODULE_ARGS[name]}
    if not isinstance(args, dict) or set(args) != want or not all(_arg_ok(v) for v in args.values()):
        raise wire.WireError("a module with malformed hyperparameters")
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
    try:
        module = getattr(torch.nn, name)(**args)
    except Exception as exc:  # noqa: BLE001 - hyperparameters torch refuses
        raise wire.WireError(f"a module that cannot be rebuilt ({type(exc).__name__})") from None
    children = d["children"]
    if not isinstance(children, list) or len(children) > 1000:
        raise wire.WireError("a malformed module")
    for pair in children:
        if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str) or not pair[0] \
                or "." in pair[0] or len(pair[0]) > 100:
            raise wire.WireError("a malformed module")
        module.add_module(pair[0], rebuild_module(pair[1], depth + 1))
    for kind in ("params", "buffers"):
        entries = d[kind]
        if not isinstance(entries, list):
            raise wire.WireError("a malformed module")
        for entry in entries:
            if not isinstance(entry, list) or len(entry) != (3 if kind == "params" else 2) \
                    or not isinstance(entry[0], str) or not _NAME.fullmatch(entry[0]):
                raise wire.WireError("a malformed module")
            value = None if entry[1] is None else wire.decode(entry[1])
            if value is not None and not isinstance(value, torch.Tensor):
                raise wire.WireError("a module whose weights are not tensors")
            if kind == "params":
                if not isinstance(entry[2], bool):
                    raise wire.WireError("a malformed module")
                can = value is not None and (value.is_floating_point() or value.is_complex())
                module._parameters[entry[0]] = None if value is None else torch.nn.Parameter(
                    value, requires_grad=entry[2] and can)
            else:
                module._buffers[entry[0]] = value
    module.training = d["training"]
    return module


def _module_tree(m: Any, depth: int = 0) -> dict:
    """A learner's module that cannot be rebuilt: its parameters, buffers and children (worker side)."""
    enc = lambda t: wire.encode(t.detach())  # noqa: E731
    children = []
    for name, child in m.named_children():
        d = describe_module(child, enc)
        children.append([name, d, None if d is not None or depth > 20 else _module_tree(child, depth + 1)])
    return {"type": type(m).__name__[:100] if _NAME.fullmatch(type(m).__name__) else "Module",
            "params": [[n, enc(p), bool(p.requires_grad)] for n, p in m._parameters.items() if p is not None],
            "buffers": [[n, enc(b)] for n, b in m._buffers.items() if b is not None],
            "training": bool(m.training), "children": children}


def _load_mirror(module: Any, params: list, buffers: list, training: list) -> None:
    """Put the grader's parameters (the tensors themselves, for backward passes), buffers and modes into ``module``."""
    owners = dict(module.named_modules())
    for name, value in params:
        owner, _, leaf = name.rpartition(".")
        if owner in owners and leaf in owners[owner]._parameters:
            owners[owner]._parameters[leaf] = value
    for name, value in buffers:
        owner, _, leaf = name.rpartition(".")
        if owner in owners and leaf in owners[owner]._buffers:
            owners[owner]._buffers[leaf] = value
    for name, flag in training:
        if name in owners:
            owners[name].training = bool(flag)


_MIRRORS: dict[str, type] = {}


def _mirror(tree: Any, session: Session | None, ref: int | None, depth: int = 0):
    """The grader's copy of a learner's module: its weights here, its forward pass in the worker."""
    import torch

    if depth > 20 or not isinstance(tree, dict) or set(tree) != {"type", "params", "buffers", "training", "children"}:
        raise wire.WireError("a malformed module")
    name = tree["type"]
    if not isinstance(name, str) or not _NAME.fullmatch(name) or not isinstance(tree["training"], bool):
        raise wire.WireError("a malformed module")
    if name not in _MIRRORS:
        _MIRRORS[name] = type(name, (_remote_module_class(),), {})
    module = _MIRRORS[name]()
    module._ganlib_session, module._ganlib_ref = session, None if ref is None else ["h", ref]
    for entry in _entries(tree["params"], 3):
        value = wire.decode(entry[1])
        if not isinstance(value, torch.Tensor) or not isinstance(entry[2], bool) or not _NAME.fullmatch(entry[0]):
            raise wire.WireError("a malformed module")
        module._parameters[entry[0]] = torch.nn.Parameter(value, requires_grad=entry[2] and value.is_floating_point())
    for entry in _entries(tree["buffers"], 2):
        value = wire.decode(entry[1])
        if not isinstance(value, torch.Tensor) or not _NAME.fullmatch(entry[0]):
            raise wire.WireError("a malformed module")
        module._buffers[entry[0]] = value
    for entry in _entries(tree["children"], 3):
        child_name, described, sub = entry
        if not _NAME.fullmatch(child_name) and not child_name.isdigit():
            raise wire.WireError("a malformed module")
        child = rebuild_module(described) if described is not None else _mirror(sub, None, None, depth + 1)
        module.add_module(child_name, child)
    module.training = tree["training"]
    return module


_REMOTE_MODULE = None


def _remote_module_class():
    global _REMOTE_MODULE
    if _REMOTE_MODULE is None:
        import torch

        class RemoteModule(torch.nn.Module):
            """A learner's module: parameters and buffers here, the forward pass run by the worker."""

            _ganlib_stub = False

            def forward(self, *args, **kwargs):
                if self._ganlib_session is None:
                    raise TypeError(f"{type(self).__name__}: only the learner's whole module can be called here")
                return self._ganlib_session.module_call(self, args, kwargs)

            def __reduce_ex__(self, protocol):
                raise TypeError("a learner's module cannot be sent back to the worker")

        _REMOTE_MODULE = RemoteModule
    return _REMOTE_MODULE


# --------------------------------------------------------------------------- the grader's side


class _Pickler(pickle.Pickler):
    """Pickles arguments for the worker; proxies become references, and tracked objects are numbered."""

    def __init__(self, file):
        super().__init__(file, protocol=4)
        self.tracked: list = []   # modules, optimisers and _ganlib_sync objects: copied back after the call
        self.grads: list = []     # tensors with requires_grad: the inputs of a remote backward pass
        self._pids: dict[int, tuple] = {}
        self._raw: set[int] = set()
        self._keep: list = []

    def persistent_id(self, obj):
        if id(obj) in self._raw:
            return None
        if isinstance(obj, (FunctionProxy, Handle)):
            return ("ref", obj._ref)
        if _REMOTE_MODULE is not None and isinstance(obj, _REMOTE_MODULE) and obj._ganlib_ref is not None:
            return ("ref", obj._ganlib_ref)
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(obj, torch.Tensor) and obj.requires_grad:
            pid = self._pids.get(id(obj))
            if pid is None:
                raw = obj.detach()
                grad = None if obj.grad is None else obj.grad.detach()
                self._raw |= {id(raw), id(grad)}
                self._keep += [raw, obj, grad]
                pid = ("grad", len(self.grads), raw, isinstance(obj, torch.nn.Parameter), grad)
                self.grads.append(obj)
                self._pids[id(obj)] = pid
            return pid
        tracked = (hasattr(type(obj), "_ganlib_sync") or type(obj) is np.ndarray
                   or (torch is not None and (isinstance(obj, (torch.nn.Module, torch.optim.Optimizer))
                                              or type(obj) is torch.Tensor)))
        if tracked:
            pid = self._pids.get(id(obj))
            if pid is None:
                self._raw.add(id(obj))
                self._keep.append(obj)
                pid = ("obj", len(self.tracked), obj)
                self.tracked.append(obj)
                self._pids[id(obj)] = pid
            return pid
        return None


class Session:
    """The grader's link to one worker while it grades one question.

    ``request(message)`` is given by the judge: it sends one request and returns the reply (a
    dict), raising when the worker breaks the protocol, dies or runs out of time.
    """

    def __init__(self, request, limit_left, memory_mb: float | None = None):
        self._request = request
        self._memory_mb = memory_mb   # the worker's memory limit, for messages
        self._limit_left = limit_left   # seconds left for the question: the worker stops learner code then
        self._next_ref = 0

    # -- requests
    def _send(self, op: str, target: Any = None, payload: Any = None, extra: Any = None) -> Any:
        try:
            return self._send_checked(op, target, payload, extra)
        except wire.WireError as exc:
            raise ProtocolBroken(str(exc)) from None

    def _send_checked(self, op: str, target: Any, payload: Any, extra: Any = None) -> Any:
        buf = io.BytesIO()
        pickler = _Pickler(buf)
        pickler.dump(payload)
        message = {"op": op, "target": target, "limit": max(self._limit_left(), 0.05),
                   "payload": base64.b64encode(buf.getvalue()).decode()}
        reply = self._request(message)
        if reply["exc"] is None or reply["state"] != []:
            self._copy_back(pickler.tracked + ([extra] if extra is not None else []), reply["state"])
        if reply["exc"] is not None:
            _raise_remote(reply["exc"], self._memory_mb)
        return self._decode(reply["value"], pickler.grads)

    def answers(self, names: list[str]) -> list:
        """The stand-ins for the learner's definitions ``names`` (in that order)."""
        try:
            return self._answers(names)
        except wire.WireError as exc:
            raise ProtocolBroken(str(exc)) from None

    def _answers(self, names: list[str]) -> list:
        reply = self._request({"op": "answers", "target": list(names), "limit": 30.0, "payload": ""})
        if reply["exc"] is not None or reply["state"] != []:
            raise wire.WireError("a malformed answer list")
        info = reply["value"]
        if not isinstance(info, list) or len(info) != len(names):
            raise wire.WireError("a malformed answer list")
        out = []
        for name, entry in zip(names, info):
            if not isinstance(entry, list) or len(entry) != 3 or entry[0] not in ("value", "callable", "handle") \
                    or not isinstance(entry[1], bool):
                raise wire.WireError("a malformed answer list")
            kind, stub, value = entry
            if kind == "value":
                out.append(self._decode(value, []))
            elif kind == "callable":
                out.append(FunctionProxy(self, ["n", name], name, stub))
            else:
                out.append(self._decode(value, []))
        return out

    def call(self, target: Any, args: tuple, kwargs: dict) -> Any:
        return self._send("call", target, (args, kwargs))

    def getattr(self, ref: int, name: str) -> Any:
        return self._send("getattr", ["h", ref], name)

    def beside(self, fn, args: tuple, kwargs: dict) -> Any:
        return self._send("beside", None, (fn, args, kwargs))

    def module_call(self, module, args: tuple, kwargs: dict) -> Any:
        params = [[n, p] for n, p in module.named_parameters()]
        buffers = [[n, b] for n, b in module.named_buffers()]
        training = [[n, m.training] for n, m in module.named_modules()]
        return self._send("modcall", module._ganlib_ref, (params, buffers, training, args, kwargs), extra=module)

    def vjp(self, rid: int, grad) -> list:
        out = self._send("vjp", rid, grad.detach())
        if not isinstance(out, list):
            raise wire.WireError("a malformed gradient")
        return out

    # -- results
    def _decode(self, data: Any, grads: list) -> Any:
        def hook(tag, payload):
            if tag == "grad":
                tensor, rid = payload
                return _with_remote_grad(tensor, self, rid, grads)
            if tag == "mod":
                if isinstance(payload, dict) and set(payload) == {"remote", "tree"}:
                    if not isinstance(payload["remote"], int) or isinstance(payload["remote"], bool):
                        raise wire.WireError("a malformed module")
                    return _mirror(payload["tree"], self, payload["remote"])
                return rebuild_module(payload)
            if tag == "h":
                if (not isinstance(payload, list) or len(payload) != 3 or not isinstance(payload[0], int)
                        or not isinstance(payload[1], str) or not isinstance(payload[2], bool)):
                    raise wire.WireError("a malformed handle")
                return Handle(self, payload[0], payload[1][:100], payload[2])
            raise wire.WireError("an unknown tag")

        return wire.decode(data, hook)

    def _copy_back(self, tracked: list, states: Any) -> None:
        if not isinstance(states, list) or len(states) != len(tracked):
            raise wire.WireError("a malformed state list")
        for obj, state in zip(tracked, states):
            if state is not None:
                try:
                    _apply_state(obj, state)
                except wire.WireError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a state that does not fit the grader's object
                    raise wire.WireError(f"a state that does not fit ({type(exc).__name__})") from None


def _overwrite(torch: Any, target: Any, value: Any) -> None:
    """Write the tensor ``value`` into ``target``: in place when shape and dtype match, else as its new data
    (dropping a gradient that no longer fits)."""
    with torch.no_grad():
        if value.shape == target.shape and value.dtype == target.dtype:
            target.copy_(value)
        else:
            target.grad = None
            target.data = value


def _apply_state(obj: Any, state: Any) -> None:
    torch = sys.modules.get("torch")   # imported already when the object is a module, an optimiser or a tensor

    if not isinstance(state, dict) or set(state) - {"module", "optimizer", "sync", "array"}:
        raise wire.WireError("a malformed state")
    if "array" in state:   # an array or tensor argument the learner's code changed in place
        value = wire.decode(state["array"])
        if isinstance(obj, np.ndarray):
            if not isinstance(value, np.ndarray):
                raise wire.WireError("a malformed state")
            if value.shape == obj.shape and obj.flags.writeable:
                obj[...] = value.astype(obj.dtype, copy=False)
        else:
            if torch is None or not isinstance(value, torch.Tensor):
                raise wire.WireError("a malformed state")
            _overwrite(torch, obj, value)
    if "module" in state:
        if torch is None or not isinstance(obj, torch.nn.Module):
            raise wire.WireError("a malformed state")
        st = state["module"]
        if not isinstance(st, dict) or set(st) != {"params", "buffers", "training"}:
            raise wire.WireError("a malformed state")
        params = dict(obj.named_parameters())
        for entry in _entries(st["params"], 4):
            name, data, grad, req = entry
            p = params.get(name)
            if p is None or not isinstance(req, bool):
                continue
            value = wire.decode(data)
            if not isinstance(value, torch.Tensor):
                raise wire.WireError("a parameter that is not a tensor")
            _overwrite(torch, p, value)
            g = None if grad is None else wire.decode(grad)
            if g is not None and (not isinstance(g, torch.Tensor) or g.shape != p.shape):
                raise wire.WireError("a gradient of the wrong shape")
            p.grad = None if g is None else g.to(p.dtype)
            if p.requires_grad != req and (p.is_floating_point() or not req):
                p.requires_grad_(req)
        owners = dict(obj.named_modules())
        for entry in _entries(st["buffers"], 2):
            name, data = entry
            owner_name, _, leaf = name.rpartition(".")
            owner = owners.get(owner_name)
            if owner is None or leaf not in owner._buffers:
                continue
            value = None if data is None else wire.decode(data)
            if value is not None and not isinstance(value, torch.Tensor):
                raise wire.WireError("a buffer that is not a tensor")
            owner._buffers[leaf] = value
        for entry in _entries(st["training"], 2):
            name, flag = entry
            if name in owners and isinstance(flag, bool):
                owners[name].training = flag
    if "optimizer" in state:
        if torch is None or not isinstance(obj, torch.optim.Optimizer):
            raise wire.WireError("a malformed state")
        sd = wire.decode(state["optimizer"])
        if not isinstance(sd, dict) or set(sd) != {"state", "param_groups"}:
            raise wire.WireError("a malformed optimiser state")
        obj.load_state_dict(sd)
    if "sync" in state:
        allowed = getattr(type(obj), "_ganlib_sync", ())
        for entry in _entries(state["sync"], 2):
            name, data = entry
            if name not in allowed:
                raise wire.WireError("a state for an attribute that is not shared")
            object.__setattr__(obj, name, wire.decode(data))


def _entries(value: Any, n: int) -> list:
    if not isinstance(value, list) or not all(isinstance(e, list) and len(e) == n and isinstance(e[0], str)
                                               for e in value):
        raise wire.WireError("a malformed state")
    return value


def _with_remote_grad(tensor, session: Session, rid: int, grads: list):
    """``tensor`` made differentiable with respect to ``grads`` by a remote backward pass."""
    if not grads:
        return tensor
    import torch

    class _Link:
        pass

    link = _Link()
    link.session, link.rid, link.shapes = session, rid, [(g.shape, g.dtype) for g in grads]
    return _remote_function().apply(tensor, link, *grads)


_REMOTE_FUNCTION = None


def _remote_function():
    global _REMOTE_FUNCTION
    if _REMOTE_FUNCTION is None:
        import torch

        class RemoteBackward(torch.autograd.Function):
            """A tensor computed by learner code in the worker; its backward pass runs there too."""

            @staticmethod
            def forward(ctx, value, link, *inputs):
                ctx.link = link
                return value.clone()

            @staticmethod
            def backward(ctx, grad):
                link = ctx.link
                out = link.session.vjp(link.rid, grad)
                if len(out) != len(link.shapes):
                    raise wire.WireError("a malformed gradient")
                grads = []
                for g, (shape, dtype) in zip(out, link.shapes):
                    if g is None:
                        grads.append(None)
                    elif isinstance(g, torch.Tensor) and g.numel() == math.prod(shape):
                        grads.append(g.to(dtype).reshape(shape))
                    else:
                        raise wire.WireError("a gradient of the wrong shape")
                return (None, None, *grads)

        _REMOTE_FUNCTION = RemoteBackward
    return _REMOTE_FUNCTION


class FunctionProxy:
    """A learner's function (or class) that lives in the worker; calling it is a remote call."""

    _ganlib_stub = False

    def __init__(self, session: Session, ref: Any, name: str, stub: bool):
        self._session, self._ref, self.__name__, self._ganlib_stub = session, ref, name, stub
        self.__qualname__ = name

    def __call__(self, *args, **kwargs):
        return self._session.call(self._ref, args, kwargs)

    def __repr__(self) -> str:
        return f"<learner's {self.__name__}>"


class Handle:
    """An object the learner's code returned that is not data; it stays in the worker."""

    _ganlib_stub = False

    def __init__(self, session: Session, ref: int, type_name: str, callable_: bool):
        self._session, self._ref, self._type_name, self._callable = session, ["h", ref], type_name, callable_
        self._ganlib_stub = False

    def __call__(self, *args, **kwargs):
        return self._session.call(self._ref, args, kwargs)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._session.getattr(self._ref[1], name)

    def __repr__(self) -> str:
        return f"<{self._type_name} object>"


def beside(answer: Any, fn, *args, **kwargs):
    """Run the library function ``fn(*args, **kwargs)`` in the process that runs ``answer``.

    In a notebook (``answer`` a plain function) that is this process; when grading, it is the
    worker that holds the learner's code (for checks about process-wide state, such as the
    random number generators). ``fn`` must be importable by name (a module-level function of ganlib).
    """
    session = getattr(answer, "_session", None) if isinstance(answer, (FunctionProxy, Handle)) else None
    if session is None:
        return fn(*args, **kwargs)
    return session.beside(fn, args, kwargs)


# --------------------------------------------------------------------------- the worker's side


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, refs: dict):
        super().__init__(file)
        self.refs, self.tracked, self.grads = refs, {}, {}

    def persistent_load(self, pid):
        kind = pid[0]
        if kind == "ref":
            ref = pid[1]
            key = ref[1] if isinstance(ref, list) and len(ref) == 2 else None
            if key not in self.refs.get(ref[0], {}):
                raise pickle.UnpicklingError("an unknown reference")
            return self.refs[ref[0]][key]
        if kind == "grad":
            _, i, raw, is_param, grad = pid
            if i not in self.grads:
                import torch

                t = torch.nn.Parameter(raw, requires_grad=True) if is_param else raw.requires_grad_(True)
                if grad is not None:
                    t.grad = grad
                self.grads[i] = t
            return self.grads[i]
        if kind == "obj":
            self.tracked[pid[1]] = pid[2]
            return pid[2]
        raise pickle.UnpicklingError("an unknown persistent id")


def _snapshot(obj: Any):
    """A copy of an array or tensor argument, to tell afterwards whether the learner's code changed it."""
    if type(obj) is np.ndarray:
        return obj.copy()
    torch = sys.modules.get("torch")
    if torch is not None and type(obj) is torch.Tensor:
        return obj.detach().clone()
    return None


def _same(before: Any, obj: Any) -> bool:
    if isinstance(before, np.ndarray):
        return before.shape == obj.shape and before.dtype == obj.dtype and np.array_equal(before, obj, equal_nan=True)
    import torch

    if before.shape != obj.shape or before.dtype != obj.dtype:
        return False
    now = obj.detach()
    if before.is_floating_point():  # NaN where NaN was counts as unchanged
        return bool(torch.allclose(before, now, rtol=0, atol=0, equal_nan=True))
    return bool(torch.equal(before, now))


class Server:
    """The worker's end: answers the grader's requests about the learner's ``namespace``."""

    def __init__(self, namespace: dict):
        self.namespace = namespace
        self.handles: dict[int, Any] = {}
        self.results: dict[int, tuple] = {}
        self.next_id = 0
        self.before: dict[int, Any] = {}  # id -> copy of each array or tensor argument of the current call

    def handle(self, request: dict) -> dict:
        from ganlib.grading.questions import _alarm, _is_stub

        op, target = request["op"], request["target"]
        if op == "answers":
            out = []
            for name in target:
                value = self.namespace.get(name)
                if callable(value):
                    out.append(["callable", bool(_is_stub(value)), None])
                else:
                    out.append(["value" if self._is_data(value) else "handle", value is None,
                                self._encode(value, [])])
            return {"value": out, "exc": None, "state": []}
        if op == "release":
            self.handles.clear()
            self.results.clear()
            return {"value": None, "exc": None, "state": []}
        refs = {"n": self.namespace, "h": self.handles}
        unpickler = _Unpickler(io.BytesIO(base64.b64decode(request["payload"])), refs)
        payload = unpickler.load()
        grads = [unpickler.grads[i] for i in sorted(unpickler.grads)]
        tracked = [unpickler.tracked[i] for i in sorted(unpickler.tracked)]
        snapshots = {id(obj): _snapshot(obj) for obj in tracked}
        self.before = {k: v for k, v in snapshots.items() if v is not None}
        value, exc = None, None
        try:
            with _alarm(float(request["limit"])):
                if op == "call":
                    kind, key = target
                    fn = refs[kind][key]
                    args, kwargs = payload
                    result = fn(*args, **kwargs)
                elif op == "getattr":
                    result = getattr(self.handles[target[1]], payload)
                elif op == "beside":
                    fn, args, kwargs = payload
                    result = fn(*args, **kwargs)
                elif op == "vjp":
                    result = self._vjp(target, payload)
                elif op == "modcall":
                    module = self.handles[target[1]]
                    params, buffers, training, args, kwargs = payload
                    _load_mirror(module, params, buffers, training)
                    tracked.append(module)
                    result = module(*args, **kwargs)
                else:
                    raise ValueError(f"unknown request {op!r}")
            value = self._encode(result, grads)
        except _Timeout:
            exc = {"timeout": True}
        except BaseException as error:  # noqa: BLE001 - whatever the learner's code raised
            exc = describe_error(error)
        return {"value": value, "exc": exc, "state": self._states(tracked)}

    def _vjp(self, rid: int, grad):
        import torch

        tensor, inputs = self.results[rid]
        live = [i for i, t in enumerate(inputs) if t.requires_grad]
        out: list = [None] * len(inputs)
        if live and tensor.requires_grad:
            got = torch.autograd.grad([tensor], [inputs[i] for i in live], grad_outputs=[grad.to(tensor.dtype)],
                                      allow_unused=True, retain_graph=True)
            for i, g in zip(live, got):
                out[i] = None if g is None else g.detach()
        return out

    @staticmethod
    def _is_data(value) -> bool:
        try:
            wire.encode(value)
            return True
        except wire.NotData:
            return False

    def _encode(self, value, grads: list):
        torch = sys.modules.get("torch")
        plain = (type(None), bool, int, float, str, complex, bytes, bytearray, list, tuple, set, frozenset, dict)

        def hook(v):
            if type(v) in plain or isinstance(v, __import__("numpy").ndarray) or isinstance(v, __import__("numpy").generic):
                return NotImplemented
            if torch is not None and isinstance(v, torch.Tensor) and type(v) in (torch.Tensor, torch.nn.Parameter):
                if v.requires_grad and grads:
                    rid = self.next_id
                    self.next_id += 1
                    self.results[rid] = (v, grads)
                    enc = wire.encode(v.detach())
                    enc["pt"][-1] = rid
                    return enc
                return NotImplemented
            ref = self.next_id
            if torch is not None and isinstance(v, torch.nn.Module):
                d = describe_module(v, lambda t: wire.encode(t.detach()))
                if d is not None:
                    return {"mod": d}
                self.next_id += 1
                self.handles[ref] = v
                return {"mod": {"remote": ref, "tree": _module_tree(v)}}
            self.next_id += 1
            self.handles[ref] = v
            return {"h": [ref, type(v).__name__[:100], callable(v)]}

        return wire.encode(value, hook)

    def _states(self, tracked: list) -> list:
        torch = sys.modules.get("torch")
        inner = set()
        if torch is not None:
            for obj in tracked:
                if isinstance(obj, torch.nn.Module):
                    inner |= {id(m) for m in obj.modules() if m is not obj}
        out = []
        for obj in tracked:
            state: dict = {}
            if torch is not None and isinstance(obj, torch.nn.Module) and (id(obj) not in inner or obj is tracked[-1]):
                state["module"] = {
                    "params": [[n, wire.encode(p.detach()), None if p.grad is None else wire.encode(p.grad.detach()),
                                bool(p.requires_grad)] for n, p in obj.named_parameters()],
                    "buffers": [[n, wire.encode(b.detach())] for n, b in obj.named_buffers()],
                    "training": [[n, bool(m.training)] for n, m in obj.named_modules()],
                }
            if torch is not None and isinstance(obj, torch.optim.Optimizer):
                state["optimizer"] = wire.encode(obj.state_dict())
            sync = getattr(type(obj), "_ganlib_sync", ())
            if sync:
                state["sync"] = [[name, wire.encode(getattr(obj, name, None))] for name in sync]
            before = self.before.get(id(obj))
            if before is not None and not _same(before, obj):
                state["array"] = wire.encode(obj.detach() if torch is not None and isinstance(obj, torch.Tensor)
                                             else obj)
            out.append(state or None)
        return out
