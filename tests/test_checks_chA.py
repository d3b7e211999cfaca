"""Appendix A questions: the buggy versions shown to the learner, and other plausible fixes gone wrong,
are rejected with the right feedback; correct fixes written differently pass."""

import numpy as np
import pytest

from conftest import assert_rejected
from ganlib import grading
from ganlib.checks import chA

NB = "A_errata.ipynb"
HEAD = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\nfrom ganlib import losses\n"
STEP = HEAD + "def train_step(G, D, opt_G, opt_D, real, z):\n    fake = G(z)\n    opt_D.zero_grad()\n"
D_OK = ("    loss_d = losses.discriminator_loss_bce(D(real), D(fake.detach()))\n    loss_d.backward()\n    opt_D.step()\n")
G_OK = ("    opt_G.zero_grad()\n    loss_g = losses.generator_loss_nonsaturating(D(fake))\n    loss_g.backward()\n"
        "    opt_G.step()\n    return loss_d.item(), loss_g.item()\n")

WRONG = {
    "q1": ("discriminator_loss", HEAD + "def discriminator_loss(real, fake):\n"
           "    return -torch.log(torch.sigmoid(real).mean() + torch.sigmoid(fake).mean())", "still -log(D(x) + D(G(z)))"),
    "q1b": ("discriminator_loss", HEAD + "def discriminator_loss(real, fake):\n"
            "    return F.softplus(-real).mean() + F.softplus(-fake).mean()", "rewards calling fakes real"),
    "q1c": ("discriminator_loss", HEAD + "def discriminator_loss(real, fake):\n"
            "    return -(torch.log(torch.sigmoid(real)).mean() + torch.log(1 - torch.sigmoid(fake)).mean())", "+-800"),
    "q1d": ("discriminator_loss", HEAD + "def discriminator_loss(real, fake):\n"
            "    return F.softplus(real).mean() + F.softplus(-fake).mean()", "swapped"),
    "q2": ("generator_head", HEAD + "class Head(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
           "        self.dense = nn.Linear(128, 1)\n    def forward(self, h):\n"
           "        return torch.tanh(self.dense(h.permute(0, 2, 3, 1)).reshape(-1, 1, 28, 28))\n"
           "def generator_head():\n    return Head()", "49 values"),
    "q2b": ("generator_head", HEAD + "def generator_head():\n    return nn.Sequential(nn.Flatten(), nn.Linear(7 * 7 * 128, 784),"
            " nn.Unflatten(1, (1, 28, 28)))", "tanh"),
    "q2c": ("generator_head", HEAD + "def generator_head():\n    return nn.Sequential(nn.Flatten(), nn.Linear(7 * 7 * 128, 784),"
            " nn.Unflatten(1, (28, 28, 1)), nn.Tanh())", "channels-last"),
    # a sigmoid head: its values lie in [0, 1], inside [-1, 1], but -1 (black) is out of reach
    "q2d": ("generator_head", HEAD + "def generator_head():\n    return nn.Sequential(nn.Flatten(), nn.Linear(7 * 7 * 128, 784),"
            " nn.Unflatten(1, (1, 28, 28)), nn.Sigmoid())", "a sigmoid?"),
    "q2e": ("generator_head", HEAD + "def generator_head():\n    return nn.Sequential(nn.Flatten(), nn.Linear(7 * 7 * 128, 784),"
            " nn.Unflatten(1, (1, 28, 28)), nn.Tanh(), nn.ReLU())", "range is [0, 1]"),
    "q3": ("train_step", STEP + "    loss_d = losses.discriminator_loss_bce(D(real), D(fake))\n    loss_d.backward()\n"
           "    opt_D.step()\n    loss_g = losses.generator_loss_nonsaturating(D(G(z)))\n    loss_g.backward()\n"
           "    opt_G.step()\n    return loss_d.item(), loss_g.item()", "detached"),
    "q3b": ("train_step", HEAD + "def train_step(G, D, opt_G, opt_D, real, z):\n    fake = G(z)\n"
            "    loss_d = losses.discriminator_loss_bce(D(real), D(fake.detach()))\n    loss_d.backward()\n    opt_D.step()\n"
            + G_OK, "second call"),
    "q3c": ("train_step", STEP + "    fake_logits = D(fake)\n"
            "    loss_d = losses.discriminator_loss_bce(D(real), fake_logits.detach())\n"
            "    loss_d.backward()\n    opt_D.step()\n" + G_OK, "D's parameters"),
    "q3d": ("train_step", STEP + D_OK + "    opt_G.zero_grad()\n    loss_g = losses.generator_loss_saturating(D(fake))\n"
            "    loss_g.backward()\n    opt_G.step()\n    return loss_d.item(), loss_g.item()\n", "non-saturating"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_plausible_wrong_answer_is_rejected_with_hint(case, make_notebook):
    name, source, hint = WRONG[case]
    assert_rejected(make_notebook, NB, "A", name, source, case[:2], hint, seed=3)


RIGHT = {
    "discriminator_loss": (chA.check_q1, HEAD + "def discriminator_loss(real, fake):\n"
                           "    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))\n"
                           "            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))"),
    "generator_head": (chA.check_q2, HEAD + "def generator_head():\n    return nn.Sequential(nn.Flatten(), "
                       "nn.Linear(7 * 7 * 128, 784), nn.Unflatten(1, (1, 28, 28)), nn.Tanh())"),
    "train_step": (chA.check_q3, HEAD + "def train_step(G, D, opt_G, opt_D, real, z):\n"
                   "    for p in D.parameters():\n        p.grad = None\n"
                   "    with torch.no_grad():\n        fake = G(z)\n"
                   "    loss_d = losses.discriminator_loss_bce(D(real), D(fake))\n    loss_d.backward()\n    opt_D.step()\n"
                   "    D.requires_grad_(False)\n    opt_G.zero_grad()\n"
                   "    loss_g = losses.generator_loss_nonsaturating(D(G(z)))\n    loss_g.backward()\n"
                   "    opt_G.step()\n    D.requires_grad_(True)\n    return float(loss_d), float(loss_g)"),
}


@pytest.mark.parametrize("name", sorted(RIGHT))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correct_fixes_written_differently_pass(name, seed):
    question, source = RIGHT[name]
    ns = {}
    exec(source, ns)
    result = question.evaluate(ns[name], rng=np.random.default_rng(seed))
    assert result.status == grading.PASSED, result.feedback


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_buggy_versions_shown_in_the_notebook_fail(seed):
    ns = {}
    exec(WRONG["q3"][1], ns)
    assert chA.check_q3.evaluate(ns["train_step"], rng=np.random.default_rng(seed)).status == grading.FAILED
    exec(WRONG["q2"][1], ns)
    assert chA.check_q2.evaluate(ns["generator_head"], rng=np.random.default_rng(seed)).status == grading.FAILED


@pytest.mark.parametrize("seed", range(5))
def test_a_sigmoid_head_fails_for_every_draw(seed):
    ns = {}
    exec(WRONG["q2d"][1], ns)
    result = chA.check_q2.evaluate(ns["generator_head"], rng=np.random.default_rng(seed))
    assert result.status == grading.FAILED and "a sigmoid?" in result.feedback, result.feedback
