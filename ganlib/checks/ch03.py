"""Chapter 03, a GAN from scratch in NumPy: graded questions.

Every answer is compared with a closed-form reference (itself checked against finite
differences in the test suite) on fresh random shapes and values. Batch size, input and
output widths are drawn distinct, so a missing or extra transpose cannot pass by luck.
"""

from __future__ import annotations

import numpy as np

from ganlib import numpy_nn as nn
from ganlib import theory
from ganlib.grading import CheckFailed, as_float_array, expect_close, expect_tuple, question, random_sizes

_MATMUL_WORDS = ("matmul", "shapes", "align", "broadcast", "dimension")


def _call(fn, args, what, transpose_hint):
    """Call the learner's function; a shape error inside a matrix product becomes a hint."""
    try:
        return fn(*args)
    except ValueError as exc:
        if any(word in str(exc) for word in _MATMUL_WORDS):
            raise CheckFailed(f"{what} raised a shape error in a matrix product ({exc}). "
                              f"A missing transpose? {transpose_hint}") from None
        raise


def _expect_grad(got, want, what, transpose_hint, wrong=None, rtol=1e-7, atol=1e-10):
    """Like expect_close, but first recognise the transposed matrix."""
    want = np.asarray(want, dtype=float)
    arr = np.asarray(got, dtype=float) if got is not None else None
    if (arr is not None and want.ndim == 2 and arr.shape == want.T.shape and arr.shape != want.shape
            and np.allclose(arr, want.T, rtol=rtol, atol=atol)):
        raise CheckFailed(f"{what} is the transpose of the right answer: {transpose_hint}")
    expect_close(got, want, what, rtol=rtol, atol=atol, wrong=wrong)


# --------------------------------------------------------------------------- Q1 Linear


@question("q1", "Linear layer: forward and backward", 2, needs=["linear_forward", "linear_backward"])
def check_q1(rng, linear_forward, linear_backward):
    n, d_in, d_out = random_sizes(rng)
    x, W, b = rng.normal(size=(n, d_in)), rng.normal(size=(d_in, d_out)), rng.normal(size=d_out)
    g = rng.normal(size=(n, d_out))
    fwd_hint = "with W of shape (in, out), y = x @ W + b."
    y = _call(linear_forward, (x.copy(), W.copy(), b.copy()), "linear_forward", fwd_hint)
    expect_close(y, x @ W + b, "linear_forward(x, W, b)", wrong={
        "the bias is added once per sample: y = x @ W + b (b broadcasts over the batch).": x @ W,
    })
    bwd_hint = "dx = grad_out @ W.T (shape (batch, in)) and dW = x.T @ grad_out (shape (in, out))."
    out = expect_tuple(_call(linear_backward, (x.copy(), W.copy(), g.copy()), "linear_backward", bwd_hint),
                       "linear_backward", ("dx", "dW", "db"))
    dx, dW, db = out
    _expect_grad(dx, g @ W.T, "dx", bwd_hint, wrong={
        "sign flip: backward propagates +dL/dy, nothing is negated.": -(g @ W.T),
    })
    _expect_grad(dW, x.T @ g, "dW", bwd_hint, wrong={
        "dW sums over the batch (x.T @ grad_out); the 1/n of a mean loss is already inside grad_out.": x.T @ g / n,
        "sign flip: dW = +x.T @ grad_out.": -(x.T @ g),
    })
    expect_close(db, g.sum(axis=0), "db", wrong={
        "db sums grad_out over the batch; the 1/n of a mean loss is already inside grad_out.": g.mean(axis=0),
        "sign flip: db = +grad_out.sum(axis=0).": -g.sum(axis=0),
    })


# --------------------------------------------------------------------------- Q2 LeakyReLU


@question("q2", "LeakyReLU: forward and backward", 2, needs=["leaky_relu_forward", "leaky_relu_backward"])
def check_q2(rng, leaky_relu_forward, leaky_relu_backward):
    shape = tuple(random_sizes(rng, 2))
    x = rng.normal(size=shape)
    x.flat[0] = -abs(x.flat[0]) - 0.1       # at least one negative and one positive entry
    x.flat[-1] = abs(x.flat[-1]) + 0.1
    slope = float(rng.uniform(0.05, 0.4))
    g = rng.normal(size=shape)
    pos = x > 0
    expect_close(leaky_relu_forward(x.copy(), slope), np.where(pos, x, slope * x), "leaky_relu_forward(x, slope)", wrong={
        "that is ReLU: negative inputs are multiplied by the slope, not set to 0.": np.maximum(x, 0),
        "the slope applies to the negative inputs; positive inputs pass unchanged.": np.where(pos, slope * x, x),
    })
    want = g * np.where(pos, 1.0, slope)
    expect_close(leaky_relu_backward(x.copy(), g.copy(), slope), want, "leaky_relu_backward(x, grad_out, slope)", wrong={
        "that is ReLU's derivative: where x < 0 the gradient is slope * grad_out, not 0.": g * pos,
        "chain rule: multiply the local derivative (1 or slope) by grad_out.": np.where(pos, 1.0, slope),
        "the slope belongs to the negative inputs: 1 where x > 0, slope where x <= 0.": g * np.where(pos, slope, 1.0),
        "sign flip: the local derivative is positive (1 or slope).": -want,
    })


# --------------------------------------------------------------------------- Q3 BCE from logits


@question("q3", "sigmoid-BCE backward from logits", 2, needs=["bce_logits_grad"])
def check_q3(rng, bce_logits_grad):
    n = int(rng.integers(3, 12))
    a = rng.normal(0, 3, size=(n, 1))
    t = rng.integers(0, 2, size=(n, 1)).astype(float)
    t[0], t[-1] = 0.0, 1.0
    s = theory.sigmoid(a)
    want = (s - t) / n
    expect_close(bce_logits_grad(a.copy(), t.copy()), want, "bce_logits_grad(logits, targets)", wrong={
        "sign flip: d/da [softplus(a) - t a] = sigmoid(a) - t, not t - sigmoid(a).": -want,
        "the loss is a mean over the batch: divide by n (you summed).": s - t,
        "that is the gradient with respect to the probability D = sigmoid(a); "
        "differentiate with respect to the logit a, where the D(1 - D) factors cancel.": (s - t) / (s * (1 - s)) / n,
        "the D(1 - D) of sigmoid's derivative has already cancelled: the result is (sigmoid(a) - t) / n.":
            (s - t) * s * (1 - s) / n,
    })


# --------------------------------------------------------------------------- Q4 Adam


def _adam(p, g, m, v, t, lr, b1, b2, eps, correct=True, eps_inside=False):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    mh, vh = (m / (1 - b1**t), v / (1 - b2**t)) if correct else (m, v)
    den = np.sqrt(vh + eps) if eps_inside else np.sqrt(vh) + eps
    return p - lr * mh / den, m, v


def _reference_adam(p, g, m, v, t, lr, b1, b2, eps):
    """Step ``t`` of ganlib's Adam from the state ``(m, v)`` after step ``t - 1``: ``(param, m, v)``."""
    param = p.copy()
    opt = nn.Adam([param], lr=lr, betas=(b1, b2), eps=eps)
    opt.m, opt.v, opt.t = [m.copy()], [v.copy()], t - 1
    opt.step([g])
    return param, opt.m[0], opt.v[0]


@question("q4", "one Adam step", 2, needs=["adam_step"])
def check_q4(rng, adam_step):
    shape = tuple(random_sizes(rng, 2))
    p, g, m = rng.normal(size=shape), rng.normal(size=shape), 0.3 * rng.normal(size=shape)
    v = rng.uniform(0.01, 1.0, size=shape)
    t = int(rng.integers(2, 8))
    lr, b1, b2 = float(rng.uniform(1e-3, 0.1)), float(rng.uniform(0.5, 0.95)), float(rng.uniform(0.9, 0.999))
    eps = 1e-2  # large enough that misplacing it is visible
    args = (p, g, m, v, t, lr, b1, b2, eps)
    out = expect_tuple(adam_step(*[a.copy() if isinstance(a, np.ndarray) else a for a in args]), "adam_step",
                       ("param_new", "m_new", "v_new"))
    p_new, m_new, v_new = out
    want = _reference_adam(*args)
    expect_close(m_new, want[1], "m_new", wrong={
        "m is a moving average: m = beta1 * m + (1 - beta1) * g.": b1 * m + g,
        "the weights are swapped: m = beta1 * m + (1 - beta1) * g.": (1 - b1) * m + b1 * g,
    })
    expect_close(v_new, want[2], "v_new", wrong={
        "v averages the *squared* gradient: v = beta2 * v + (1 - beta2) * g**2.": b2 * v + (1 - b2) * g,
    })
    expect_close(p_new, want[0], "param_new", wrong={
        "bias correction is missing: divide m by (1 - beta1**t) and v by (1 - beta2**t) before the update.":
            _adam(*args, correct=False)[0],
        "sign flip: Adam descends, param - lr * m_hat / (sqrt(v_hat) + eps).": 2 * p - want[0],
        "eps goes outside the square root: sqrt(v_hat) + eps.": _adam(*args, eps_inside=True)[0],
        "the bias correction uses the step number t itself (t = 1 on the first step), not t - 1 or t + 1.":
            _adam(p, g, m, v, t + 1, lr, b1, b2, eps)[0],
        "the bias correction uses the step number t itself (t = 1 on the first step), not t - 1.":
            _adam(p, g, m, v, t - 1, lr, b1, b2, eps)[0],
    })


# --------------------------------------------------------------------------- Q5 D's input gradient


def _disc(x, W1, b1, W2, b2, slope):
    pre = x @ W1 + b1
    return pre, np.where(pre > 0, pre, slope * pre) @ W2 + b2


def _disc_input_grad(x, W1, b1, W2, b2, slope, mask_fn=None):
    pre, _ = _disc(x, W1, b1, W2, b2, slope)
    mask = np.where(pre > 0, 1.0, slope) if mask_fn is None else mask_fn(pre)
    return (mask * W2[:, 0]) @ W1.T


def _disc_problem(rng):
    n, d, h = random_sizes(rng, 3, 2, 9)
    W1 = rng.normal(size=(d, h))
    b1 = rng.normal(size=h)
    W2 = rng.normal(size=(h, 1))
    b2 = rng.normal(size=1)
    slope = float(rng.uniform(0.05, 0.4))
    x = rng.normal(size=(n, d))
    return x, W1, b1, W2, b2, slope


def _disc_net(W1, b1, W2, b2, slope) -> nn.Sequential:
    """The discriminator of Q5/Q6 built from ganlib's layers (the reference)."""
    first, second = nn.Linear(*W1.shape, np.random.default_rng(0)), nn.Linear(*W2.shape, np.random.default_rng(0))
    first.W[...], first.b[...], second.W[...], second.b[...] = W1, b1, W2, b2
    return nn.Sequential(first, nn.LeakyReLU(slope), second)


D_HINT = "with grad_h = mask * W2.T (shape (batch, hidden)), dx = grad_h @ W1.T (shape (batch, d))."


@question("q5", "the discriminator's gradient w.r.t. its input", 2, needs=["disc_input_grad"])
def check_q5(rng, disc_input_grad):
    x, W1, b1, W2, b2, slope = _disc_problem(rng)
    n = x.shape[0]
    disc = _disc_net(W1, b1, W2, b2, slope)
    disc.forward(x)
    want = disc.backward(np.ones((x.shape[0], 1)))   # d logit_i / d x_i, sample by sample
    got = _call(disc_input_grad, (x.copy(), W1.copy(), b1.copy(), W2.copy(), b2.copy(), slope),
                "disc_input_grad", D_HINT)
    _expect_grad(got, want, "disc_input_grad(x, W1, b1, W2, b2, slope)", D_HINT, wrong={
        "the LeakyReLU derivative is missing: multiply by 1 where the pre-activation is > 0, by slope elsewhere.":
            _disc_input_grad(x, W1, b1, W2, b2, slope, lambda pre: np.ones_like(pre)),
        "that uses ReLU's derivative: where the pre-activation is negative LeakyReLU passes slope, not 0.":
            _disc_input_grad(x, W1, b1, W2, b2, slope, lambda pre: (pre > 0).astype(float)),
        "the mask depends on the pre-activation x @ W1 + b1, including the bias.":
            _disc_input_grad(x, W1, np.zeros_like(b1), W2, b2, slope),
        "each logit depends only on its own sample: no 1/n here, this is a per-sample derivative.": want / n,
        "sign flip: this is d logit / dx, nothing is negated.": -want,
    })


# --------------------------------------------------------------------------- Q6 one generator update


def _gen_update(z, A, c, W1, b1, W2, b2, slope, lr, dlogit=None, scale=1.0, ascent=False):
    n = z.shape[0]
    x = z @ A + c
    _, a = _disc(x, W1, b1, W2, b2, slope)
    s = theory.sigmoid(a)
    g_a = (-(1 - s) / n if dlogit is None else dlogit(s, n)) * scale
    g_x = g_a * _disc_input_grad(x, W1, b1, W2, b2, slope)      # chain rule per sample (g_a has shape (n, 1))
    dA, dc = z.T @ g_x, g_x.sum(axis=0)
    sign = -1.0 if ascent else 1.0
    return A - sign * lr * dA, c - sign * lr * dc, dA, dc


G_HINT = "dA = z.T @ dL/dx (shape (k, d)), dc = dL/dx summed over the batch."


@question("q6", "one full generator update", 2, needs=["generator_update"])
def check_q6(rng, generator_update):
    x0, W1, b1, W2, b2, slope = _disc_problem(rng)
    n, d = x0.shape
    k = int(rng.choice([v for v in range(2, 8) if v not in (n, d)]))
    z, A, c = rng.normal(size=(n, k)), rng.normal(size=(k, d)), rng.normal(size=d)
    lr = float(rng.uniform(0.05, 0.5))
    args = (z, A, c, W1, b1, W2, b2, slope, lr)
    out = expect_tuple(_call(generator_update, tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args),
                             "generator_update", G_HINT), "generator_update", ("A_new", "c_new"))
    A_new, c_new = out
    gen = nn.Linear(k, d, np.random.default_rng(0))
    gen.W[...], gen.b[...] = A, c
    nn.generator_step(gen, _disc_net(W1, b1, W2, b2, slope), nn.SGD(gen.parameters(), lr=lr), z.copy())
    A_ref, c_ref = gen.W, gen.b
    as_float_array(A_new, "A_new")
    if np.shape(A_new) == (k, d) and np.allclose(A_new, A, rtol=0, atol=1e-12) and not np.allclose(A_ref, A, rtol=0, atol=1e-12):
        raise CheckFailed("A_new equals A: the update must change the parameters (did you return the old ones?)")
    wrongs = {
        "sign flip: the generator *descends* its loss, A - lr * dL/dA.": _gen_update(*args, ascent=True),
        "the loss is a mean over the batch: dL/da = -(1 - D) / n; you summed (no 1/n).": _gen_update(*args, scale=n),
        "that is the saturating loss log(1 - D), whose dL/da = -D / n; use the non-saturating -log D: -(1 - D) / n.":
            _gen_update(*args, dlogit=lambda s, n: -s / n),
        "sign flip in dL/da: for -log D(G(z)) it is -(1 - D) / n, negative.": _gen_update(*args, dlogit=lambda s, n: (1 - s) / n),
    }
    if np.shape(A_new) == (d, k) and np.allclose(np.asarray(A_new, dtype=float), A_ref.T):
        raise CheckFailed(f"A_new is transposed: {G_HINT}")
    expect_close(A_new, A_ref, "A_new", rtol=1e-6, atol=1e-9, wrong={h: v[0] for h, v in wrongs.items()})
    expect_close(c_new, c_ref, "c_new", rtol=1e-6, atol=1e-9, wrong={h: v[1] for h, v in wrongs.items()})


# --------------------------------------------------------------------------- Q7 conceptual


@question("q7", "saturating vs non-saturating gradients", 2, needs=["VANISHING_LOSS", "GRADIENT_RATIO"])
def check_q7(rng, VANISHING_LOSS, GRADIENT_RATIO):
    if VANISHING_LOSS not in ("saturating", "nonsaturating"):
        raise CheckFailed(f"VANISHING_LOSS should be 'saturating' or 'nonsaturating', got {VANISHING_LOSS!r}")
    if VANISHING_LOSS != "saturating":
        raise CheckFailed("the non-saturating loss keeps a gradient of size 1 - D near 1 when D(G(z)) is small; "
                          "it is the saturating loss log(1 - D) whose gradient -D vanishes.")
    d = 0.01
    sat, ns = theory.generator_loss_grads(np.log(d / (1 - d)))
    expect_close(GRADIENT_RATIO, float(ns / sat), "GRADIENT_RATIO", rtol=1e-3, atol=1e-6, wrong={
        "the ratio is non-saturating / saturating = (1 - D) / D, not the other way round.": float(sat / ns),
        "compare gradients with respect to the logit: -(1 - D) and -D, so the ratio is (1 - D) / D.": 1 / d,
    })


QUESTIONS = [check_q1, check_q2, check_q3, check_q4, check_q5, check_q6, check_q7]
