"""Chapter 08 questions: solutions pass, stubs are "not attempted", plausible wrong answers get their hint."""

import numpy as np
import pytest

from conftest import assert_questions_fast, assert_rejected
from ganlib import grading

NB = "08_dcgan.ipynb"

HEAD = "import torch\nfrom torch import nn\n"
CT = "def conv_transpose_output_size(size, kernel, stride, padding, output_padding=0):\n    return "
BLOCK = HEAD + "def generator_block(in_channels, out_channels):\n    return nn.Sequential(\n"
INIT = HEAD + "def init_weights(module):\n    with torch.no_grad():\n        for m in module.modules():\n"
INIT_BN = ("            elif isinstance(m, nn.BatchNorm2d):\n"
           "                m.weight.normal_(1.0, 0.02)\n                m.bias.zero_()\n")
INIT_CONV = ("            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):\n"
             "                m.weight.normal_(0.0, 0.02)\n                if m.bias is not None:\n"
             "                    m.bias.zero_()\n")


def d_stack(first_bn=False, act="nn.LeakyReLU(0.2, inplace=True)", odd_kernel=3, sigmoid=False, bias=False,
            last="nn.Conv2d(c_in, 1, 4, 1, 0, bias=False)"):
    return (HEAD + "def discriminator_stack(image_size, channels, width):\n"
            "    sides = [image_size]\n    while sides[-1] > 4:\n        sides.append((sides[-1] + 1) // 2)\n"
            "    layers, c_in = [], channels\n    for i in range(1, len(sides)):\n"
            f"        kernel = 4 if sides[i - 1] == 2 * sides[i] else {odd_kernel}\n"
            "        c_out = width * 2 ** (i - 1)\n"
            f"        layers.append(nn.Conv2d(c_in, c_out, kernel, 2, 1, bias={bias}))\n"
            f"        if i > {0 if first_bn else 1}:\n            layers.append(nn.BatchNorm2d(c_out))\n"
            f"        layers.append({act})\n        c_in = c_out\n"
            f"    layers.append({last})\n"
            + ("    layers.append(nn.Sigmoid())\n" if sigmoid else "")
            + "    return nn.Sequential(*layers)\n")


WRONG = {
    # Q1: the transposed convolution's output size
    "q1": ("conv_transpose_output_size", CT + "(size + 2 * padding - kernel) // stride + 1", "ordinary convolution"),
    "q1b": ("conv_transpose_output_size", CT + "size * stride - 2 * padding + kernel + output_padding", "(size - 1) * stride"),
    "q1c": ("conv_transpose_output_size", CT + "(size - 1) * stride + 2 * padding + kernel + output_padding",
            "padding crops the output"),
    "q1d": ("conv_transpose_output_size", CT + "(size - 1) * stride - padding + kernel + output_padding", "both sides"),
    "q1e": ("conv_transpose_output_size", CT + "(size - 1) * stride - 2 * padding + kernel", "output_padding is missing"),
    "q1f": ("conv_transpose_output_size", CT + "(size - 1) * stride - 2 * padding + kernel - 1 + output_padding",
            "off by one"),
    "q1g": ("conv_transpose_output_size", CT + "((size - 1) * stride - 2 * padding + kernel + output_padding) / 1.5",
            "whole number"),
    # Q2: a generator block
    "q2": ("generator_block", BLOCK + "        nn.Conv2d(in_channels, out_channels, 4, 2, 1, bias=False),\n"
           "        nn.BatchNorm2d(out_channels), nn.ReLU())", "that is nn.Conv2d"),
    "q2b": ("generator_block", BLOCK + "        nn.ConvTranspose2d(in_channels, out_channels, 3, 2, 1, bias=False),\n"
            "        nn.BatchNorm2d(out_channels), nn.ReLU())", "kernel 3 gives 2h - 1"),
    "q2c": ("generator_block", BLOCK + "        nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 0, bias=False),\n"
            "        nn.BatchNorm2d(out_channels), nn.ReLU())", "padding 0 adds two pixels"),
    "q2d": ("generator_block", BLOCK + "        nn.ConvTranspose2d(in_channels, out_channels, 4, 1, 0, bias=False),\n"
            "        nn.BatchNorm2d(out_channels), nn.ReLU())", "stride 1"),
    "q2e": ("generator_block", BLOCK + "        nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1),\n"
            "        nn.BatchNorm2d(out_channels), nn.ReLU())", "bias is redundant before BatchNorm"),
    "q2f": ("generator_block", BLOCK + "        nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False),\n"
            "        nn.ReLU())", "BatchNorm2d(out_channels) is missing"),
    "q2g": ("generator_block", BLOCK + "        nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False),\n"
            "        nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2))", "that is LeakyReLU"),
    "q2h": ("generator_block", BLOCK + "        nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False),\n"
            "        nn.ReLU(), nn.BatchNorm2d(out_channels))", "should end with ReLU"),
    "q2i": ("generator_block", BLOCK + "        nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False),\n"
            "        nn.BatchNorm2d(out_channels, affine=False), nn.ReLU())", "BatchNorm's scale and shift"),
    "q2j": ("generator_block", HEAD + "def generator_block(in_channels, out_channels):\n"
            "    nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False))", "returned None"),
    # Q3: the initialisation
    "q3": ("init_weights", INIT + INIT_CONV.replace("0.0, 0.02", "0.0, 0.02 ** 0.5") + INIT_BN, "not the variance"),
    "q3b": ("init_weights", INIT + INIT_CONV + INIT_BN.replace("1.0, 0.02", "0.0, 0.02"), "centred on 0"),
    "q3c": ("init_weights", INIT + INIT_CONV, "BatchNorm weights are drawn from N(1, 0.02) too"),
    "q3d": ("init_weights", INIT + INIT_CONV.replace("(nn.Conv2d, nn.ConvTranspose2d)", "nn.Conv2d") + INIT_BN,
            "not a subclass of nn.Conv2d"),
    "q3e": ("init_weights", HEAD + "def init_weights(m):\n    classname = m.__class__.__name__\n"
            "    if classname.find('Conv') != -1:\n        m.weight.data.normal_(0.0, 0.02)\n"
            "    elif classname.find('BatchNorm') != -1:\n        m.weight.data.normal_(1.0, 0.02)\n"
            "        m.bias.data.fill_(0)\n", "nothing changed"),
    "q3f": ("init_weights", INIT + INIT_CONV.replace("m.weight.normal_(0.0, 0.02)", "m.weight.uniform_(-0.02, 0.02)")
            + INIT_BN, "uniform"),
    "q3g": ("init_weights", INIT + INIT_CONV.replace("                if m.bias is not None:\n", "")
            .replace("                    m.bias.zero_()", "                m.bias.zero_()") + INIT_BN, "bias is None"),
    "q3h": ("init_weights", INIT + INIT_CONV.replace("m.weight.normal_(0.0, 0.02)", "m.weight.fill_(0.02)") + INIT_BN,
            "a constant"),
    "q3i": ("init_weights", INIT + INIT_CONV.replace("                    m.bias.zero_()\n", "                    pass\n")
            + INIT_BN, "start at exactly 0"),
    "q3j": ("init_weights", INIT + INIT_CONV.replace("0.0, 0.02", "0.0, 0.2") + INIT_BN, "should look like N(0, 0.02)"),
    # Q4: D's stack for a size
    "q4": ("discriminator_stack", d_stack(first_bn=True), "no BatchNorm after D's input layer"),
    "q4b": ("discriminator_stack", d_stack(sigmoid=True), "no sigmoid"),
    "q4c": ("discriminator_stack", d_stack(odd_kernel=4), "7 -> 4 needs kernel 3"),
    "q4d": ("discriminator_stack", d_stack(act="nn.ReLU(inplace=True)"), "not ReLU"),
    "q4e": ("discriminator_stack", d_stack(act="nn.LeakyReLU()"), "negative slope should be 0.2"),
    "q4f": ("discriminator_stack", d_stack(bias=True), "bias=False"),
    "q4g": ("discriminator_stack", d_stack(last="nn.Conv2d(c_in, 1, 3, 1, 0, bias=False)"), "4x4 map into a 1x1 map"),
    "q4h": ("discriminator_stack", d_stack().replace("c_out = width * 2 ** (i - 1)", "c_out = width * i"),
            "start at width and double"),
}


THROUGH_THE_GRADER = ["q1", "q2", "q3e", "q4c"]   # one per question end to end; the rest in process (faster)


@pytest.mark.parametrize("case", THROUGH_THE_GRADER)
def test_plausible_wrong_answer_is_rejected_by_the_grader(case, make_notebook):
    name, source, hint = WRONG[case]
    assert_rejected(make_notebook, NB, "08", name, source, case[:2], hint, seed=3)


@pytest.mark.parametrize("case", sorted(set(WRONG) - set(THROUGH_THE_GRADER)))
def test_plausible_wrong_answer_is_rejected_with_hint(case):
    from ganlib.checks import ch08

    name, source, hint = WRONG[case]
    ns = {}
    exec(source, ns)
    question = {q.key: q for q in ch08.QUESTIONS}[case[:2]]
    for seed in range(3):
        result = question.evaluate(ns[name], rng=np.random.default_rng(seed))
        assert result.status == grading.FAILED, (seed, result)
        assert hint in result.feedback, (seed, result.feedback)


@pytest.mark.parametrize("seed", range(8))
def test_solutions_pass_for_many_seeds(seed):
    """Statistical checks (Q3) must not fail a correct answer by bad luck: tolerances are 5 standard errors."""
    from conftest import solution_namespace
    from ganlib.checks import ch08

    ns = solution_namespace(NB)
    for q in ch08.QUESTIONS:
        result = q.evaluate(*[ns[n] for n in q.needs], rng=np.random.default_rng(100 + seed))
        assert result.passed, (q.key, result.feedback)


def test_questions_are_fast():
    from ganlib.checks import ch08

    assert_questions_fast(NB, ch08.QUESTIONS, seeds=range(3), max_numbers=300_000)  # q3: DCGAN-sized weight statistics
