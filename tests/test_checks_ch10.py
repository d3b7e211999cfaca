"""Chapter 10 questions reject plausible wrong answers with the right feedback."""

import numpy as np
import pytest

from conftest import assert_questions_fast, assert_rejected
from ganlib import grading

NB = "10_beyond_dcgan.ipynb"

HEAD = "import torch\n"
EST = ("def spectral_norm_estimate(W, n_iter):\n    v = torch.ones(W.shape[1], dtype=W.dtype)\n"
       "    for _ in range(n_iter):\n        sigma, u, v = power_iteration_step(W, v)\n    return sigma\n")
STEP = "def power_iteration_step(W, v):\n    v = v / v.norm()\n"
GOOD_STEP = STEP + "    u = W @ v\n    u = u / u.norm()\n    v = W.T @ u\n    v = v / v.norm()\n    return u @ W @ v, u, v\n"
GP = "def gradient_penalty(critic, real, fake, labels, lam=10.0):\n    n = real.shape[0]\n"
EPS = "    eps = torch.rand(n, 1, 1, 1, dtype=real.dtype)\n"
X_HAT = "    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)\n"
NORM = "    return lam * ((g.reshape(n, -1).norm(dim=1) - 1) ** 2).mean()\n"
GRAD = "    (g,) = torch.autograd.grad(critic(x_hat, labels).sum(), x_hat, create_graph=True)\n"
PROJ = "def projection_output(phi, y, w, b, E):\n"
EMA = "@torch.no_grad()\ndef ema_update(ema, model, decay):\n"
PARAMS = "    for p_ema, p in zip(ema.parameters(), model.parameters()):\n"
BUFFERS = "    for b_ema, b in zip(ema.buffers(), model.buffers()):\n        b_ema.copy_(b)\n"

WRONG = {
    "q1": ("power_iteration_step", HEAD + STEP + "    u = W @ v\n    v = W.T @ u\n    v = v / v.norm()\n"
           "    return u @ W @ v, u, v\n" + EST, "normalise u"),
    "q1b": ("power_iteration_step", HEAD + STEP + "    u = W @ v\n    u = u / u.norm()\n    w = W.T @ u\n"
            "    return u @ W @ v, u, w / w.norm()\n" + EST, "uses the new v"),
    "q1c": ("power_iteration_step", HEAD + STEP + "    u = W @ v\n    u = u / u.norm()\n    v = W @ u\n    v = v / v.norm()\n"
            "    return u @ W @ v, u, v\n" + EST, "the transpose"),
    "q1d": ("power_iteration_step", HEAD + GOOD_STEP + "def spectral_norm_estimate(W, n_iter):\n"
            "    return torch.linalg.norm(W)\n", "Frobenius"),
    # one power step too many: within 0.1% of the SVD after 200 steps all the same
    "q1e": ("power_iteration_step", HEAD + GOOD_STEP + EST.replace("range(n_iter)", "range(n_iter + 1)"),
            "run exactly n_iter steps"),
    "q1f": ("power_iteration_step", HEAD + GOOD_STEP + EST.replace("range(n_iter)", "range(max(n_iter - 1, 1))"),
            "not n_iter - 1"),
    "q2": ("gradient_penalty", HEAD + GP + "    eps = torch.rand(1, dtype=real.dtype)\n" + X_HAT + GRAD + NORM,
           "one eps for the whole batch"),
    "q2b": ("gradient_penalty", HEAD + GP + "    eps = torch.rand_like(real)\n" + X_HAT + GRAD + NORM, "one eps per sample"),
    "q2c": ("gradient_penalty", HEAD + GP + EPS + X_HAT
            + "    (g,) = torch.autograd.grad(critic(x_hat, labels.flip(0)).sum(), x_hat, create_graph=True)\n" + NORM,
            "keep their pair's labels"),
    "q2d": ("gradient_penalty", HEAD + GP + EPS + X_HAT
            + "    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)\n" + NORM,
            "the critic is conditional"),
    "q2e": ("gradient_penalty", HEAD + GP + EPS + X_HAT
            + "    (g,) = torch.autograd.grad(critic(x_hat, labels).sum(), x_hat)\n" + NORM, "create_graph=True"),
    "q2f": ("gradient_penalty", HEAD + GP + EPS + X_HAT + GRAD + "    return lam * (g.norm() - 1) ** 2\n", "per sample"),
    "q3": ("projection_output", HEAD + PROJ + "    return (E[y] * phi).sum(dim=1, keepdim=True)\n", "psi(phi)"),
    "q3b": ("projection_output", HEAD + PROJ + "    return phi @ w + b + phi @ E.T\n", "one score per image"),
    "q3c": ("projection_output", HEAD + PROJ + "    return phi @ w + (E[y] * phi).sum(dim=1, keepdim=True)\n", "bias b"),
    "q3d": ("projection_output", HEAD + PROJ + "    return phi @ w + b\n", "the label does nothing"),
    "q4": ("ema_update", HEAD + EMA + PARAMS + "        p_ema.mul_(1 - decay).add_(p, alpha=decay)\n" + BUFFERS,
           "wrong way round"),
    "q4b": ("ema_update", HEAD + EMA + PARAMS + "        p_ema.mul_(decay).add_(p, alpha=1 - decay)\n",
            "copy the buffers"),
    "q4c": ("ema_update", HEAD + EMA + PARAMS + "        p.mul_(decay).add_(p_ema, alpha=1 - decay)\n" + BUFFERS,
            "changed the model"),
    "q4d": ("ema_update", HEAD + EMA + PARAMS + "        p_ema = decay * p_ema + (1 - decay) * p\n" + BUFFERS,
            "did not move"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_plausible_wrong_answer_is_rejected_with_hint(case, make_notebook):
    name, source, hint = WRONG[case]
    assert_rejected(make_notebook, NB, "10", name, source, case[:2], hint, seed=11)


def test_questions_are_fast_on_the_solutions():
    from ganlib.checks import ch10

    assert_questions_fast(NB, ch10.QUESTIONS, seeds=(0, 1, 2))


@pytest.mark.parametrize("seed", range(5))
def test_the_one_eps_mistake_is_caught_for_every_input(seed):
    from ganlib.checks import ch10

    ns = {}
    exec(WRONG["q2"][1], ns)
    assert ch10.check_q2.evaluate(ns["gradient_penalty"], rng=np.random.default_rng(seed)).status == grading.FAILED


@pytest.mark.parametrize("seed", range(8))
def test_one_power_step_too_many_is_caught_for_every_draw(seed):
    from ganlib.checks import ch10

    ns = {}
    exec(WRONG["q1e"][1], ns)
    result = ch10.check_q1.evaluate(ns["power_iteration_step"], ns["spectral_norm_estimate"],
                                    rng=np.random.default_rng(seed))
    assert result.status == grading.FAILED and "after 2 steps" in result.feedback, result.feedback
