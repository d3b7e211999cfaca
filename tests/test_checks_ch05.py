"""Chapter 05 questions reject plausible wrong answers with the right feedback."""

import pytest

from conftest import assert_questions_fast, assert_rejected
from ganlib import grading

NB = "05_pytorch.ipynb"

HEAD = "import torch\nimport torch.nn.functional as F\n"
DENSE_FWD = HEAD + "def dense_forward(x, W, b, slope):\n    return F.leaky_relu(x @ W + b, slope)\n"
BACK = "def dense_backward_autograd(x, W, b, slope, grad_out):\n" \
       "    x, W, b = (t.clone().requires_grad_(True) for t in (x, W, b))\n    y = dense_forward(x, W, b, slope)\n"
GP = HEAD + "def gradient_penalty(critic, real, fake, lam):\n    n = real.shape[0]\n"
GP_GRAD = ("    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)\n"
           "    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)\n")
EPS = "    eps = torch.rand(n, *[1] * (real.dim() - 1), dtype=real.dtype)\n"
R1 = HEAD + "def r1_penalty(critic, real, gamma):\n    x = real.clone().requires_grad_(True)\n"

WRONG = {
    "q1": ("dense_forward", HEAD + "def dense_forward(x, W, b, slope):\n    return torch.relu(x @ W + b)\n" + BACK
           + "    return torch.autograd.grad(y, [x, W, b], grad_out)", "that is ReLU"),
    "q1b": ("dense_forward", DENSE_FWD + BACK + "    return torch.autograd.grad(y.sum(), [x, W, b])", "grad_out is ignored"),
    "q1c": ("dense_forward", HEAD + "import numpy as np\ndef dense_forward(x, W, b, slope):\n"
            "    y = x.detach().numpy() @ W.detach().numpy() + b.detach().numpy()\n"
            "    return torch.from_numpy(np.where(y > 0, y, slope * y))\n" + BACK + "    return 0, 0, 0", "stay in torch"),
    "q2": ("nonsaturating_loss", HEAD + "def nonsaturating_loss(logits):\n    return -torch.log(logits).mean()",
           "treats its input as probabilities"),
    "q2b": ("nonsaturating_loss", HEAD + "def nonsaturating_loss(logits):\n"
            "    return F.binary_cross_entropy(logits, torch.ones_like(logits))", "treats its input as probabilities"),
    "q2c": ("nonsaturating_loss", HEAD + "def nonsaturating_loss(logits):\n    return -F.softplus(logits).mean()",
            "saturating loss"),
    "q2d": ("nonsaturating_loss", HEAD + "def nonsaturating_loss(logits):\n    return -torch.log(torch.sigmoid(logits)).mean()",
            "not stable"),
    "q2e": ("nonsaturating_loss", HEAD + "def nonsaturating_loss(logits):\n    return F.softplus(-torch.sigmoid(logits)).mean()",
            "a sigmoid too many"),
    "q1d": ("dense_forward", HEAD + "def dense_forward(x, W, b, slope):\n    return F.leaky_relu(x @ W + b.detach(), slope)\n"
            + BACK + "    return torch.autograd.grad(y, [x, W, b], grad_out)", "does not depend on b"),
    "q2f": ("nonsaturating_loss", HEAD + "def nonsaturating_loss(logits):\n"
            "    return F.binary_cross_entropy(torch.sigmoid(logits), torch.ones_like(logits))", "clamps log(D) at -100"),
    "q3": ("hinge_d_loss", HEAD + "def hinge_d_loss(real, fake):\n    return F.relu(1 - real).mean() + F.relu(1 - fake).mean()\n"
           "def hinge_g_loss(fake):\n    return -fake.mean()", "sign of the fake term"),
    "q3b": ("hinge_d_loss", HEAD + "def hinge_d_loss(real, fake):\n    return torch.cat([F.relu(1 - real), F.relu(1 + fake)]).mean()\n"
            "def hinge_g_loss(fake):\n    return -fake.mean()", "mean over its own batch"),
    "q3c": ("hinge_d_loss", HEAD + "def hinge_d_loss(real, fake):\n    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()\n"
            "def hinge_g_loss(fake):\n    return F.relu(1 - fake).mean()", "no margin"),
    "q4": ("gradient_penalty", GP + "    eps = torch.rand(1, dtype=real.dtype)\n" + GP_GRAD
           + "    return lam * ((g.reshape(n, -1).norm(dim=1) - 1) ** 2).mean()", "one eps for the whole batch"),
    "q4b": ("gradient_penalty", GP + EPS + GP_GRAD + "    return lam * (g.norm() - 1) ** 2", "the norm is per sample"),
    "q4c": ("gradient_penalty", GP + EPS + "    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)\n"
            "    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)\n"
            "    return lam * ((g.reshape(n, -1).norm(dim=1) - 1) ** 2).mean()", "create_graph=True"),
    "q4d": ("gradient_penalty", GP + "    eps = torch.rand_like(real)\n" + GP_GRAD
            + "    return lam * ((g.reshape(n, -1).norm(dim=1) - 1) ** 2).mean()", "one eps per sample"),
    "q4e": ("gradient_penalty", GP + EPS + GP_GRAD + "    return lam * ((g.reshape(n, -1).pow(2).sum(1) - 1) ** 2).mean()",
            "squared norm"),
    "q5": ("r1_penalty", R1 + "    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)\n"
           "    return gamma * g.reshape(x.shape[0], -1).pow(2).sum(1).mean()", "gamma / 2"),
    "q5b": ("r1_penalty", R1 + "    (g,) = torch.autograd.grad(critic(x).sum(), x)\n"
            "    return gamma / 2 * g.reshape(x.shape[0], -1).pow(2).sum(1).mean()", "create_graph=True"),
    "q5c": ("r1_penalty", R1 + "    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)\n"
            "    return gamma / 2 * g.norm() ** 2", "not their sum"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_plausible_wrong_answer_is_rejected_with_hint(case, make_notebook):
    name, source, hint = WRONG[case]
    assert_rejected(make_notebook, NB, "05", name, source, case[:2], hint, seed=11)


@pytest.mark.parametrize("seed", range(6))
def test_wrong_penalties_are_caught_under_every_seed(seed):
    """Every run tests both vector and image batches, so the mistakes are caught whatever the seed."""
    import numpy as np

    from ganlib.checks import ch05

    ns = {}
    exec(WRONG["q4b"][1], ns)
    exec(WRONG["q4"][1].replace("gradient_penalty", "gp_one_eps"), ns)
    exec(WRONG["q5c"][1], ns)
    for q, fn in ((ch05.check_q4, ns["gradient_penalty"]), (ch05.check_q4, ns["gp_one_eps"]), (ch05.check_q5, ns["r1_penalty"])):
        assert q.evaluate(fn, rng=np.random.default_rng(seed)).status == grading.FAILED


def test_questions_are_fast():
    from ganlib.checks import ch05

    assert_questions_fast(NB, ch05.QUESTIONS, seeds=range(3))
