"""Chapter 03 questions reject plausible wrong answers with the right feedback."""

import pytest

from conftest import assert_questions_fast, assert_rejected
from ganlib import grading

NB = "03_numpy_gan.ipynb"

LIN_FWD = "import numpy as np\ndef linear_forward(x, W, b):\n    return x @ W + b\n"
DISC = ("import numpy as np\nfrom ganlib import theory\n"
        "def disc_input_grad(x, W1, b1, W2, b2, slope):\n    pre = x @ W1 + b1\n")
GEN = ("import numpy as np\nfrom ganlib import theory\n"
       "def generator_update(z, A, c, W1, b1, W2, b2, slope, lr):\n"
       "    n = z.shape[0]\n    x = z @ A + c\n    pre = x @ W1 + b1\n"
       "    a = np.where(pre > 0, pre, slope * pre) @ W2 + b2\n")
GEN_BACK = ("    gx = (ga * np.where(pre > 0, 1.0, slope) * W2.T) @ W1.T\n")
ADAM = "import numpy as np\ndef adam_step(param, grad, m, v, t, lr, beta1, beta2, eps):\n" \
       "    m = beta1 * m + (1 - beta1) * grad\n    v = beta2 * v + (1 - beta2) * grad**2\n"

WRONG = {
    "q1": ("linear_forward", LIN_FWD + "def linear_backward(x, W, grad_out):\n    return grad_out @ W, x.T @ grad_out, grad_out.sum(0)",
           "missing transpose"),
    "q1b": ("linear_forward", LIN_FWD + "def linear_backward(x, W, grad_out):\n    return grad_out @ W.T, grad_out.T @ x, grad_out.sum(0)",
            "transpose of the right answer"),
    "q1c": ("linear_forward", LIN_FWD + "def linear_backward(x, W, grad_out):\n    return grad_out @ W.T, x.T @ grad_out, grad_out.mean(0)",
            "db sums grad_out over the batch"),
    "q2": ("leaky_relu_forward", "import numpy as np\ndef leaky_relu_forward(x, slope):\n    return np.where(x > 0, x, slope * x)\n"
           "def leaky_relu_backward(x, grad_out, slope):\n    return grad_out * (x > 0)", "that is ReLU's derivative"),
    "q2b": ("leaky_relu_forward", "import numpy as np\ndef leaky_relu_forward(x, slope):\n    return np.where(x > 0, x, slope * x)\n"
            "def leaky_relu_backward(x, grad_out, slope):\n    return np.where(x > 0, 1.0, slope)", "chain rule"),
    "q3": ("bce_logits_grad", "from ganlib import theory\ndef bce_logits_grad(logits, targets):\n    return (targets - theory.sigmoid(logits)) / logits.size",
           "sign flip"),
    "q3b": ("bce_logits_grad", "from ganlib import theory\ndef bce_logits_grad(logits, targets):\n    return theory.sigmoid(logits) - targets",
            "divide by n (you summed)"),
    "q4": ("adam_step", ADAM + "    return param - lr * m / (np.sqrt(v) + eps), m, v", "bias correction is missing"),
    "q4b": ("adam_step", ADAM + "    mh, vh = m / (1 - beta1**t), v / (1 - beta2**t)\n    return param + lr * mh / (np.sqrt(vh) + eps), m, v",
            "sign flip"),
    "q4c": ("adam_step", ADAM + "    mh, vh = m / (1 - beta1**t), v / (1 - beta2**t)\n    return param - lr * mh / np.sqrt(vh + eps), m, v",
            "eps goes outside the square root"),
    "q5": ("disc_input_grad", DISC + "    return (np.where(pre > 0, 1.0, slope) * W2.T) @ W1", "missing transpose"),
    "q5b": ("disc_input_grad", DISC + "    return ((pre > 0) * W2.T) @ W1.T", "ReLU's derivative"),
    "q5c": ("disc_input_grad", DISC + "    return (np.where(pre > 0, 1.0, slope) * W2.T) @ W1.T / x.shape[0]", "no 1/n"),
    "q6": ("generator_update", GEN + "    ga = -(1 - theory.sigmoid(a)) / n\n" + GEN_BACK + "    return A + lr * z.T @ gx, c + lr * gx.sum(0)",
           "sign flip: the generator *descends*"),
    "q6b": ("generator_update", GEN + "    ga = -(1 - theory.sigmoid(a))\n" + GEN_BACK + "    return A - lr * z.T @ gx, c - lr * gx.sum(0)",
            "you summed (no 1/n)"),
    "q6c": ("generator_update", GEN + "    ga = -theory.sigmoid(a) / n\n" + GEN_BACK + "    return A - lr * z.T @ gx, c - lr * gx.sum(0)",
            "saturating loss"),
    "q6d": ("generator_update", GEN + "    ga = -(1 - theory.sigmoid(a)) / n\n" + GEN_BACK + "    return A - lr * (gx.T @ z), c - lr * gx.sum(0)",
            "missing transpose"),
    "q7": ("VANISHING_LOSS", "VANISHING_LOSS = 'saturating'\nGRADIENT_RATIO = 0.01 / 0.99", "not the other way round"),
    "q7b": ("VANISHING_LOSS", "VANISHING_LOSS = 'nonsaturating'\nGRADIENT_RATIO = 99", "saturating loss log(1 - D)"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_plausible_wrong_answer_is_rejected_with_hint(case, make_notebook):
    name, source, hint = WRONG[case]
    assert_rejected(make_notebook, NB, "03", name, source, case[:2], hint, seed=11)


def test_hard_coded_answers_do_not_pass(make_notebook):
    cells = ["import numpy as np\ndef bce_logits_grad(logits, targets):\n    return np.zeros((4, 1))",
             "import numpy as np\ndef adam_step(param, grad, m, v, t, lr, beta1, beta2, eps):\n"
             "    return param - lr * np.sign(grad), m, v"]
    res = {r.key: r for r in grading.grade_notebook(make_notebook(cells, chapter="03"), seed=0).results}
    assert res["q3"].status == grading.FAILED and res["q4"].status == grading.FAILED


def test_questions_are_fast():
    from ganlib.checks import ch03

    assert_questions_fast(NB, ch03.QUESTIONS, seeds=(5,))
