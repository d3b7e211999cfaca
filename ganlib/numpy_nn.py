"""A neural-network toolkit in plain NumPy, and a GAN trained with it (chapter 03).

Every array is ``float64`` and every batch has shape ``(batch, features)``.
Each layer has

- ``forward(x)``: compute the output and remember what ``backward`` needs;
- ``backward(grad_out)``: given ``dL/d(output)`` (same shape as the output), store
  ``dL/d(parameter)`` for every parameter and return ``dL/d(input)``;
- ``parameters()`` and ``gradients()``: lists of arrays in the same order. Gradients are
  *overwritten* (not accumulated) by each ``backward`` and updated in place, so an
  optimiser can hold on to both lists.

The losses come from :mod:`ganlib.theory` (stable, from logits); their gradients with
respect to the logits are derived here. A loss is a *mean* over the batch, so the
factor ``1/n`` enters once, in the loss gradient, and layers *sum* over the batch.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> net = Sequential(Linear(3, 8, rng), LeakyReLU(0.2), Linear(8, 1, rng))
>>> x = rng.normal(size=(5, 3))
>>> net.forward(x).shape
(5, 1)
>>> net.backward(np.ones((5, 1))).shape
(5, 3)
>>> [p.shape for p in net.parameters()]
[(3, 8), (8,), (8, 1), (1,)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ganlib import theory

# --------------------------------------------------------------------------- layers


class Layer:
    """Base class: a differentiable map from ``(batch, in)`` to ``(batch, out)``."""

    name: str = "Layer"
    where: str = ""  # set by Sequential, e.g. " (layer 2 of Sequential)"

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def parameters(self) -> list[np.ndarray]:
        return []

    def gradients(self) -> list[np.ndarray]:
        return []

    def __repr__(self) -> str:
        return self.name

    # helpers -----------------------------------------------------------------
    def _label(self) -> str:
        return f"{self.name}{self.where}"

    def _check_input(self, x: np.ndarray, features: int | None = None) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        want = f"(batch, {features})" if features is not None else "(batch, features)"
        if x.ndim != 2 or (features is not None and x.shape[1] != features):
            raise ValueError(f"{self._label()}: expected input of shape {want}, got {x.shape}")
        return x

    def _check_grad(self, grad_out: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
        if shape is None:
            raise RuntimeError(f"{self._label()}: backward called before forward")
        grad_out = np.asarray(grad_out, dtype=float)
        if grad_out.shape != shape:
            raise ValueError(f"{self._label()}: backward expects grad_out of shape {shape} "
                             f"(the shape of the last output), got {grad_out.shape}")
        return grad_out


class Linear(Layer):
    """Affine layer ``y = x @ W + b`` with ``W`` of shape ``(in_features, out_features)``.

    Parameters
    ----------
    in_features, out_features : int
    rng : numpy.random.Generator
    init : {"xavier", "he"}
        ``"xavier"`` (Glorot & Bengio 2010): ``W ~ U(-r, r)``, ``r = sqrt(6 / (in + out))``,
        which keeps the variance of activations and gradients about constant for tanh/linear
        units. ``"he"`` (He et al. 2015): ``W ~ N(0, 2 / in)``, the same idea for ReLU units.
        The bias starts at zero.

    Backward, for ``g = dL/dy`` of shape ``(batch, out)``:
    ``dL/dW = x.T @ g`` (sum over the batch), ``dL/db = g.sum(axis=0)``, ``dL/dx = g @ W.T``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lin = Linear(2, 3, rng)
    >>> lin.forward(np.ones((4, 2))).shape
    (4, 3)
    >>> lin.forward(np.ones((4, 5)))
    Traceback (most recent call last):
    ...
    ValueError: Linear(2, 3): expected input of shape (batch, 2), got (4, 5)
    """

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator, init: str = "xavier"):
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear needs positive sizes, got ({in_features}, {out_features})")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.name = f"Linear({in_features}, {out_features})"
        if init == "xavier":
            r = np.sqrt(6.0 / (in_features + out_features))
            W = rng.uniform(-r, r, size=(in_features, out_features))
        elif init == "he":
            W = rng.normal(0.0, np.sqrt(2.0 / in_features), size=(in_features, out_features))
        else:
            raise ValueError(f"init must be 'xavier' or 'he', got {init!r}")
        self.W = W.astype(float)
        self.b = np.zeros(out_features)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x, self.in_features)
        self._x = x
        return x @ self.W + self.b

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        shape = None if self._x is None else (self._x.shape[0], self.out_features)
        g = self._check_grad(grad_out, shape)
        self.dW[...] = self._x.T @ g
        self.db[...] = g.sum(axis=0)
        return g @ self.W.T

    def parameters(self) -> list[np.ndarray]:
        return [self.W, self.b]

    def gradients(self) -> list[np.ndarray]:
        return [self.dW, self.db]


class _Elementwise(Layer):
    """An activation ``y = f(x)`` applied entrywise; backward is ``grad_out * f'(x)``."""

    def __init__(self):
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        self._x = x
        self._y = self._f(x)
        return self._y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        g = self._check_grad(grad_out, None if self._x is None else self._x.shape)
        return g * self._df()

    def _f(self, x):  # pragma: no cover - interface
        raise NotImplementedError

    def _df(self):  # pragma: no cover - interface
        raise NotImplementedError


class ReLU(_Elementwise):
    """``max(x, 0)``; derivative 1 for ``x > 0``, 0 otherwise.

    Examples
    --------
    >>> ReLU().forward(np.array([[-1.0, 2.0]])).tolist()
    [[0.0, 2.0]]
    """

    name = "ReLU"

    def _f(self, x):
        return np.maximum(x, 0.0)

    def _df(self):
        return (self._x > 0).astype(float)


class LeakyReLU(_Elementwise):
    """``x`` for ``x > 0``, ``slope * x`` otherwise; derivative 1 or ``slope``.

    Examples
    --------
    >>> act = LeakyReLU(0.2)
    >>> act.forward(np.array([[-1.0, 2.0]])).tolist()
    [[-0.2, 2.0]]
    >>> act.backward(np.array([[1.0, 1.0]])).tolist()
    [[0.2, 1.0]]
    """

    def __init__(self, slope: float = 0.2):
        super().__init__()
        self.slope = float(slope)
        self.name = f"LeakyReLU({slope:g})"

    def _f(self, x):
        return np.where(x > 0, x, self.slope * x)

    def _df(self):
        return np.where(self._x > 0, 1.0, self.slope)


class Tanh(_Elementwise):
    """``tanh(x)``; derivative ``1 - tanh(x)^2``.

    Examples
    --------
    >>> Tanh().forward(np.zeros((1, 2))).tolist()
    [[0.0, 0.0]]
    """

    name = "Tanh"

    def _f(self, x):
        return np.tanh(x)

    def _df(self):
        return 1.0 - self._y**2


class Sigmoid(_Elementwise):
    """``sigmoid(x)`` (stable, from :func:`ganlib.theory.sigmoid`); derivative ``s (1 - s)``.

    A GAN's discriminator should output the *logit* and leave the sigmoid to the loss;
    this layer is here for completeness and for bounded outputs.

    Examples
    --------
    >>> Sigmoid().forward(np.zeros((1, 1))).tolist()
    [[0.5]]
    """

    name = "Sigmoid"

    def _f(self, x):
        return theory.sigmoid(x)

    def _df(self):
        return self._y * (1.0 - self._y)


class Standardize(Layer):
    """Fixed input scaling ``y = (x - mean) / std`` (no parameters); backward is ``grad_out / std``.

    Networks train best on inputs of order one around zero. With zero biases every ReLU
    kink of a network on 1-D input starts at ``x = 0``; data near ``x = 4`` would see an
    almost linear function. Putting this layer first (with statistics estimated from a
    data sample) moves the data to where the kinks are.

    Examples
    --------
    >>> Standardize(4.0, 2.0).forward(np.array([[4.0], [6.0]])).tolist()
    [[0.0], [1.0]]
    """

    def __init__(self, mean: float | np.ndarray, std: float | np.ndarray):
        self.mean = np.asarray(mean, dtype=float)
        self.std = np.asarray(std, dtype=float)
        if np.any(self.std <= 0):
            raise ValueError(f"std must be positive, got {std}")
        self.name = f"Standardize({np.round(mean, 3)}, {np.round(std, 3)})"
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x, self.mean.size if self.mean.ndim else None)
        self._shape = x.shape
        return (x - self.mean) / self.std

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return self._check_grad(grad_out, self._shape) / self.std


class Sequential(Layer):
    """Layers applied in order; backward runs them in reverse.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> net = Sequential(Linear(1, 4, rng), Tanh(), Linear(4, 1, rng))
    >>> len(net.parameters()) == len(net.gradients()) == 4
    True
    >>> net.forward(np.zeros(3))
    Traceback (most recent call last):
    ...
    ValueError: Linear(1, 4) (layer 0 of Sequential): expected input of shape (batch, 1), got (3,)
    """

    name = "Sequential"

    def __init__(self, *layers: Layer):
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: item {i} is {type(layer).__name__}, not a Layer")
            layer.where = f" (layer {i} of Sequential)"
        self.layers = list(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out

    def parameters(self) -> list[np.ndarray]:
        return [p for layer in self.layers for p in layer.parameters()]

    def gradients(self) -> list[np.ndarray]:
        return [g for layer in self.layers for g in layer.gradients()]

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"


def mlp(sizes: Sequence[int], rng: np.random.Generator, activation: str = "leaky_relu",
        slope: float = 0.2, init: str | None = None) -> Sequential:
    """A multilayer perceptron ``Linear -> act -> ... -> Linear`` (no activation after the last layer).

    Parameters
    ----------
    sizes : sequence of int
        ``[in, hidden..., out]``, at least two entries.
    rng : numpy.random.Generator
    activation : {"leaky_relu", "relu", "tanh"}
    slope : float
        Negative slope of LeakyReLU.
    init : {"xavier", "he"}, optional
        Defaults to He for (leaky) ReLU and Xavier for tanh.

    Examples
    --------
    >>> mlp([1, 16, 16, 1], np.random.default_rng(0))
    Sequential(Linear(1, 16), LeakyReLU(0.2), Linear(16, 16), LeakyReLU(0.2), Linear(16, 1))
    """
    acts = {"leaky_relu": lambda: LeakyReLU(slope), "relu": ReLU, "tanh": Tanh}
    if activation not in acts:
        raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least [in, out], got {list(sizes)}")
    init = init or ("xavier" if activation == "tanh" else "he")
    layers: list[Layer] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(a, b, rng, init=init))
        if i < len(sizes) - 2:
            layers.append(acts[activation]())
    return Sequential(*layers)


# --------------------------------------------------------------------------- loss gradients (from logits)


def bce_with_logits_grad(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Gradient of ``theory.bce_with_logits`` (a mean over all ``n`` entries) w.r.t. the logits.

    Per entry ``d/da [softplus(a) - t a] = sigmoid(a) - t``, so the gradient is ``(sigmoid(a) - t) / n``.

    Examples
    --------
    >>> bce_with_logits_grad(np.zeros(2), np.array([1.0, 0.0])).tolist()
    [-0.25, 0.25]
    """
    a = np.asarray(logits, dtype=float)
    t = np.asarray(targets, dtype=float)
    if a.shape != t.shape:
        raise ValueError(f"logits and targets must have the same shape, got {a.shape} and {t.shape}")
    return (theory.sigmoid(a) - t) / a.size


def discriminator_loss_and_grads(real_logits: np.ndarray, fake_logits: np.ndarray
                                 ) -> tuple[float, np.ndarray, np.ndarray]:
    """``theory.discriminator_loss`` and its gradients w.r.t. both logit arrays.

    ``L_D = mean softplus(-a_real) + mean softplus(a_fake)``, so
    ``dL_D/da_real = -(1 - sigmoid(a_real)) / n_real`` and ``dL_D/da_fake = sigmoid(a_fake) / n_fake``.

    Examples
    --------
    >>> loss, g_real, g_fake = discriminator_loss_and_grads(np.zeros((2, 1)), np.zeros((4, 1)))
    >>> round(loss, 6), float(g_real[0, 0]), float(g_fake[0, 0])
    (1.386294, -0.25, 0.125)
    """
    real = np.asarray(real_logits, dtype=float)
    fake = np.asarray(fake_logits, dtype=float)
    loss = theory.discriminator_loss(real, fake)
    return loss, -(1.0 - theory.sigmoid(real)) / real.size, theory.sigmoid(fake) / fake.size


GENERATOR_LOSSES = ("nonsaturating", "saturating")


def generator_loss_and_grad(fake_logits: np.ndarray, kind: str = "nonsaturating") -> tuple[float, np.ndarray]:
    """A generator loss (mean over the batch) and its gradient w.r.t. the fake logits.

    ``kind="nonsaturating"``: ``mean softplus(-a)``, gradient ``-(1 - sigmoid(a)) / n``.
    ``kind="saturating"``: ``-mean softplus(a)`` (= ``mean log(1 - D)``), gradient ``-sigmoid(a) / n``.
    The per-sample derivatives are :func:`ganlib.theory.generator_loss_grads`.

    Examples
    --------
    >>> loss, g = generator_loss_and_grad(np.zeros((4, 1)))
    >>> round(loss, 6), float(g[0, 0])
    (0.693147, -0.125)
    """
    a = np.asarray(fake_logits, dtype=float)
    sat, ns = theory.generator_loss_grads(a)
    if kind == "nonsaturating":
        return theory.generator_loss_nonsaturating(a), ns / a.size
    if kind == "saturating":
        return theory.generator_loss_saturating(a), sat / a.size
    raise ValueError(f"kind must be one of {GENERATOR_LOSSES}, got {kind!r}")


# --------------------------------------------------------------------------- gradient checking


def relative_error(a: np.ndarray | Sequence[np.ndarray], b: np.ndarray | Sequence[np.ndarray]) -> float:
    """``||a - b|| / max(||a|| + ||b||, 1e-300)`` over all entries (lists of arrays are concatenated).

    Scale-free: 1e-7 means about seven matching digits, whatever the size of the gradient.

    Examples
    --------
    >>> relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 3e-8])) < 1e-8
    True
    """
    flat = lambda v: np.concatenate([np.ravel(np.asarray(t, dtype=float)) for t in v]) \
        if isinstance(v, (list, tuple)) else np.ravel(np.asarray(v, dtype=float))
    fa, fb = flat(a), flat(b)
    if fa.shape != fb.shape:
        raise ValueError(f"cannot compare {fa.size} numbers with {fb.size}")
    return float(np.linalg.norm(fa - fb) / max(np.linalg.norm(fa) + np.linalg.norm(fb), 1e-300))


def numerical_gradient(loss: Callable[[], float], params: Sequence[np.ndarray], eps: float = 1e-6) -> list[np.ndarray]:
    """Central differences ``(L(p + eps) - L(p - eps)) / (2 eps)``, one entry at a time.

    ``params`` are modified in place during the call and restored exactly afterwards.
    They must be float64: in float32 the rounding error ``~1e-7 / eps`` swamps the result.

    Examples
    --------
    >>> w = np.array([3.0])
    >>> round(float(numerical_gradient(lambda: float(w[0] ** 2), [w])[0][0]), 6)  # 2 w = 6
    6.0
    """
    grads = []
    for p in params:
        if p.dtype != np.float64:
            raise TypeError(f"gradient checking needs float64 parameters, got {p.dtype}")
        g = np.zeros_like(p)
        flat_p, flat_g = p.reshape(-1), g.reshape(-1)
        if not np.shares_memory(flat_p, p):
            raise ValueError("parameters must be contiguous arrays (views are modified in place)")
        for i in range(flat_p.size):
            old = flat_p[i]
            flat_p[i] = old + eps
            up = float(loss())
            flat_p[i] = old - eps
            down = float(loss())
            flat_p[i] = old
            flat_g[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def gradient_check(fn: Callable[[], tuple[float, Sequence[np.ndarray]]], params: Sequence[np.ndarray],
                   eps: float = 1e-6) -> float:
    """Relative error between the backpropagated and the finite-difference gradient.

    Parameters
    ----------
    fn : callable
        ``fn() -> (loss, grads)``: runs forward and backward with the *current* values of
        ``params`` and returns the scalar loss and the analytic gradients (same order as ``params``).
    params : list of float64 arrays
        The arrays ``fn`` reads; they are perturbed in place and restored.
    eps : float
        Step of the central difference. Its error is ``O(eps^2)`` from truncation plus
        ``O(machine_eps * |L| / eps)`` from rounding; ``1e-6`` in float64 keeps both near 1e-10.

    Returns
    -------
    float
        :func:`relative_error` over all parameters; below ``1e-6`` means the backward pass is right.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lin, x = Linear(3, 2, rng), rng.normal(size=(4, 3))
    >>> def fn():
    ...     y = lin.forward(x)
    ...     lin.backward(2 * y)          # d/dy sum(y^2)
    ...     return float(np.sum(y**2)), lin.gradients()
    >>> gradient_check(fn, lin.parameters()) < 1e-8
    True
    """
    _, grads = fn()
    analytic = [np.array(g, dtype=float, copy=True) for g in grads]
    if len(analytic) != len(params):
        raise ValueError(f"fn returned {len(analytic)} gradients for {len(params)} parameters")
    for i, (g, p) in enumerate(zip(analytic, params)):
        if g.shape != p.shape:
            raise ValueError(f"gradient {i} has shape {g.shape}, its parameter {p.shape}")
    numeric = numerical_gradient(lambda: fn()[0], params, eps)
    return relative_error(analytic, numeric)


# --------------------------------------------------------------------------- optimisers


class _Optimizer:
    def __init__(self, params: Sequence[np.ndarray], lr: float):
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.params = list(params)
        self.lr = float(lr)
        self.t = 0

    def _check(self, grads: Sequence[np.ndarray]) -> list[np.ndarray]:
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"{type(self).__name__}.step got {len(grads)} gradients for {len(self.params)} parameters")
        for i, (g, p) in enumerate(zip(grads, self.params)):
            if np.shape(g) != p.shape:
                raise ValueError(f"{type(self).__name__}.step: gradient {i} has shape {np.shape(g)}, parameter {p.shape}")
        return grads


class SGD(_Optimizer):
    """Gradient descent with (heavy-ball) momentum, PyTorch's convention.

    ``v <- momentum * v + g``, ``p <- p - lr * v`` (``v`` starts at 0, so step 1 is ``p - lr g``).
    Parameters are updated in place.

    Examples
    --------
    >>> w = np.array([1.0]); opt = SGD([w], lr=0.1, momentum=0.9)
    >>> opt.step([np.array([1.0])]); opt.step([np.array([1.0])]); w.round(6).tolist()
    [0.71]
    """

    def __init__(self, params: Sequence[np.ndarray], lr: float = 0.01, momentum: float = 0.0):
        super().__init__(params, lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.v = [np.zeros_like(p) for p in self.params]

    def step(self, grads: Sequence[np.ndarray]) -> None:
        self.t += 1
        for p, g, v in zip(self.params, self._check(grads), self.v):
            v *= self.momentum
            v += g
            p -= self.lr * v


class Adam(_Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, updating parameters in place.

    At step ``t = 1, 2, ...``: ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``p <- p - lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``,
    ``v_hat = v / (1 - b2^t)``. The first step is therefore ``p - lr * g / (|g| + eps)``,
    about ``lr`` in the direction of ``-sign(g)`` whatever the gradient's scale.

    Examples
    --------
    >>> w = np.array([1.0, 1.0]); opt = Adam([w], lr=0.1)
    >>> opt.step([np.array([1e-3, -50.0])]); w.round(4).tolist()  # 1e-3 / (1e-3 + 1e-8) is not quite 1
    [0.9, 1.1]
    """

    def __init__(self, params: Sequence[np.ndarray], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]

    def step(self, grads: Sequence[np.ndarray]) -> None:
        self.t += 1
        c1, c2 = 1.0 - self.b1**self.t, 1.0 - self.b2**self.t
        for p, g, m, v in zip(self.params, self._check(grads), self.m, self.v):
            m *= self.b1
            m += (1.0 - self.b1) * g
            v *= self.b2
            v += (1.0 - self.b2) * g * g
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


# --------------------------------------------------------------------------- GAN building blocks


def grad_norm(grads: Sequence[np.ndarray]) -> float:
    """Euclidean norm of all gradient entries together.

    Examples
    --------
    >>> grad_norm([np.array([3.0]), np.array([[4.0]])])
    5.0
    """
    return float(np.sqrt(sum(float(np.sum(np.square(g))) for g in grads)))


def check_finite(value: float, step: int, what: str) -> None:
    """Stop training with a clear message when a loss or a norm is NaN or infinite.

    Examples
    --------
    >>> check_finite(float("nan"), 12, "discriminator loss")
    Traceback (most recent call last):
    ...
    FloatingPointError: training stopped at step 12: the discriminator loss is nan (try a smaller learning rate, and check the inputs for NaN)
    """
    if not np.isfinite(value):
        raise FloatingPointError(f"training stopped at step {step}: the {what} is {value} "
                                 "(try a smaller learning rate, and check the inputs for NaN)")


def discriminator_step(D: Layer, opt_D: _Optimizer, x_real: np.ndarray, x_fake: np.ndarray) -> float:
    """One update of ``D`` on ``L_D`` (label 1 for real, 0 for fake); returns ``L_D`` before the update.

    Real and fake samples go through ``D`` as one batch, so a single backward pass gives
    the gradient of both terms.
    """
    n_real = x_real.shape[0]
    logits = D.forward(np.concatenate([x_real, x_fake], axis=0))
    loss, g_real, g_fake = discriminator_loss_and_grads(logits[:n_real], logits[n_real:])
    D.backward(np.concatenate([g_real, g_fake], axis=0))
    opt_D.step(D.gradients())
    return loss


def generator_step(G: Layer, D: Layer, opt_G: _Optimizer, z: np.ndarray,
                   kind: str = "nonsaturating") -> tuple[float, float]:
    """One update of ``G``; ``D`` is used but not updated. Returns ``(L_G, ||dL_G/dtheta_G||)``.

    The chain: ``dL/da`` from the loss, ``dL/dx = D.backward(dL/da)`` (the discriminator's
    input-gradient: how each fake sample should move), then ``G.backward(dL/dx)``.
    ``D.backward`` also overwrites ``D``'s parameter gradients; the next discriminator step
    recomputes them, so nothing leaks.
    """
    x_fake = G.forward(z)
    logits = D.forward(x_fake)
    loss, g_logits = generator_loss_and_grad(logits, kind)
    g_x = D.backward(g_logits)
    G.backward(g_x)
    grads = G.gradients()
    norm = grad_norm(grads)
    opt_G.step(grads)
    return loss, norm


@dataclass
class GANHistory:
    """What :func:`train_gan_1d` records.

    ``loss_d``, ``loss_g``, ``grad_norm_g`` : arrays of shape (steps,), one entry per step
    (before that step's update). ``snapshots`` : list of dicts with keys ``step``, ``samples``
    (shape (n_eval,)), ``grid`` and ``d_prob`` (D(x) = sigmoid(logit) on the grid).
    """

    loss_d: np.ndarray
    loss_g: np.ndarray
    grad_norm_g: np.ndarray
    snapshots: list[dict] = field(default_factory=list)


def generate(G: Layer, n: int, rng: np.random.Generator, noise_dim: int = 1) -> np.ndarray:
    """``n`` samples ``G(z)``, ``z ~ N(0, I)`` of shape (n, noise_dim); returns shape (n, out)."""
    return G.forward(rng.normal(size=(n, noise_dim)))


def train_gan_1d(G: Layer, D: Layer, sample_real: Callable[[int, np.random.Generator], np.ndarray],
                 rng: np.random.Generator, steps: int, batch_size: int = 128, noise_dim: int = 1,
                 lr_g: float = 1e-3, lr_d: float = 1e-3, betas: tuple[float, float] = (0.5, 0.999),
                 kind: str = "nonsaturating", lr_decay: bool = False, snapshot_steps: Sequence[int] = (),
                 grid: np.ndarray | None = None, n_eval: int = 2000) -> GANHistory:
    """Train a GAN with Adam: per step, one discriminator update then one generator update.

    Parameters
    ----------
    G : Layer
        Maps noise ``(batch, noise_dim)`` to samples ``(batch, 1)``.
    D : Layer
        Maps samples ``(batch, 1)`` to logits ``(batch, 1)``.
    sample_real : callable
        ``sample_real(n, rng) -> (n, 1)``, e.g. ``lambda n, r: data.sample_gaussian_1d(n, r, 4, 1.25)``.
    rng : numpy.random.Generator
        Drives the real batches and the noise.
    steps, batch_size, noise_dim : int
    lr_g, lr_d : float
        Adam learning rates; ``betas=(0.5, 0.999)`` as in DCGAN (Radford et al. 2016).
    kind : {"nonsaturating", "saturating"}
        Generator loss.
    lr_decay : bool
        Decay both learning rates linearly from their initial value (step 0) to 0 (after
        the last step). The iterates of a GAN circle around the equilibrium (chapter 01);
        shrinking steps damp that circling so training ends close to it.
    snapshot_steps : sequence of int
        Steps (0 = before training, ``steps`` = after) at which to record ``n_eval`` samples
        of G and D(x) on ``grid``.
    grid : array of shape (m,), optional
        Where to evaluate D for snapshots; defaults to ``linspace(-4, 10, 281)``.

    Returns
    -------
    GANHistory

    Raises
    ------
    FloatingPointError
        When a loss or the generator's gradient norm becomes NaN/inf, naming the step.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> G, D = mlp([1, 8, 1], rng), mlp([1, 8, 1], rng)
    >>> hist = train_gan_1d(G, D, lambda n, r: r.normal(4, 1, size=(n, 1)), rng, steps=5)
    >>> hist.loss_d.shape, hist.grad_norm_g.shape
    ((5,), (5,))
    """
    if kind not in GENERATOR_LOSSES:
        raise ValueError(f"kind must be one of {GENERATOR_LOSSES}, got {kind!r}")
    if steps < 0 or batch_size < 1:
        raise ValueError(f"need steps >= 0 and batch_size >= 1, got {steps} and {batch_size}")
    grid = np.linspace(-4.0, 10.0, 281) if grid is None else np.asarray(grid, dtype=float)
    opt_d = Adam(D.parameters(), lr=lr_d, betas=betas)
    opt_g = Adam(G.parameters(), lr=lr_g, betas=betas)
    loss_d, loss_g, norm_g = np.zeros(steps), np.zeros(steps), np.zeros(steps)
    snapshots: list[dict] = []
    wanted = set(int(s) for s in snapshot_steps)
    eval_rng = np.random.default_rng(rng.integers(2**63))  # snapshots do not disturb training's stream

    def snapshot(step: int) -> None:
        samples = generate(G, n_eval, eval_rng, noise_dim)[:, 0]
        d_prob = theory.sigmoid(D.forward(grid[:, None])[:, 0])
        snapshots.append({"step": step, "samples": samples, "grid": grid, "d_prob": d_prob})

    for step in range(steps):
        if step in wanted:
            snapshot(step)
        if lr_decay:
            opt_d.lr, opt_g.lr = lr_d * (1 - step / steps), lr_g * (1 - step / steps)
        x_real = np.asarray(sample_real(batch_size, rng), dtype=float)
        x_fake = generate(G, batch_size, rng, noise_dim)
        loss_d[step] = discriminator_step(D, opt_d, x_real, x_fake)
        check_finite(loss_d[step], step, "discriminator loss")
        loss_g[step], norm_g[step] = generator_step(G, D, opt_g, rng.normal(size=(batch_size, noise_dim)), kind)
        check_finite(loss_g[step], step, "generator loss")
        check_finite(norm_g[step], step, "generator's gradient norm")
    if steps in wanted:
        snapshot(steps)
    return GANHistory(loss_d, loss_g, norm_g, snapshots)
