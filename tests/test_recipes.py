"""ganlib.recipes: the named training recipes that chapters 07-10, ``ganlib train --recipe`` and the benchmarks share."""

import json
import re
from pathlib import Path

import pytest
import torch

from ganlib import recipes
from ganlib.checkpoints import build_models
from ganlib.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_names_and_a_clear_error_for_an_unknown_name():
    assert recipes.names() == sorted(recipes.RECIPES) == ["dcgan-guidelines", "mlp-gan", "sn-hinge"]
    with pytest.raises(ValueError, match="unknown recipe 'sngan': choose one of dcgan-guidelines, mlp-gan, sn-hinge"):
        recipes.get("sngan")
    assert recipes.DEFAULT_DCGAN in recipes.RECIPES


@pytest.mark.parametrize("name", recipes.names())
def test_every_recipe_builds_its_models_and_config(name):
    r = recipes.get(name)
    torch.manual_seed(0)
    G, D = build_models(r.meta())
    x = G(torch.randn(3, r.latent_dim))
    assert x.shape == (3, 1, 28, 28) and D(x).shape == (3, 1)
    c = r.config()
    assert isinstance(c, TrainConfig)
    assert (c.batch_size, c.loss, c.lr_g, c.lr_d, c.betas, c.steps, c.minutes) == (
        r.batch_size, r.loss, r.lr_g, r.lr_d, r.betas, r.steps, r.minutes)
    assert r.config(steps=7, minutes=None, lr_g=1e-5).lr_g == 1e-5  # keyword arguments win
    assert json.loads(json.dumps(r.options()))["model"] == r.model  # plain values (stored in checkpoints)


def test_chapter_08_keeps_the_dcgan_guidelines_and_chapter_10_normalises_d():
    guidelines, sn = build_models(recipes.get("dcgan-guidelines").meta()), build_models(recipes.get("sn-hinge").meta())
    # Radford et al.: BatchNorm in D (not on its input layer), no spectral norm, the non-saturating loss
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in guidelines[1].modules())
    assert not any(hasattr(m, "parametrizations") for m in guidelines[1].modules())
    assert recipes.get("dcgan-guidelines").loss == "nonsaturating"
    # chapter 10: spectrally normalised layers, no BatchNorm in D, hinge loss, Adam(1e-3, (0, 0.9))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in sn[1].modules())
    assert sum(hasattr(m, "parametrizations") for m in sn[1].modules()) == 4
    r = recipes.get("sn-hinge")
    assert (r.loss, r.lr_g, r.lr_d, r.betas) == ("hinge", 1e-3, 1e-3, (0.0, 0.9))


@pytest.mark.parametrize("notebook, names", [("course/08_dcgan.ipynb", ["dcgan-guidelines"]),
                                             ("course/09_evaluation.ipynb", ["mlp-gan", "dcgan-guidelines"])])
def test_the_chapters_import_their_recipes_instead_of_copying_them(notebook, names):
    cells = json.loads((ROOT / notebook).read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "recipes" in code and all(f'"{n}"' in code for n in names)


def test_chapter_07_spells_out_the_mlp_gan_recipe_exactly():
    """Chapter 07 writes its settings out (it teaches TrainConfig); they must stay the recipe chapter 09 scores."""
    cells = json.loads((ROOT / "course/07_mnist_mlp_gan.ipynb").read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    r = recipes.get("mlp-gan")
    assert f"LATENT = {r.latent_dim}" in code and f'"width": {r.width}' in code
    assert f"STEPS = budget(full={r.steps}," in code and f"minutes=None if is_smoke() else {r.minutes}" in code
    start = code.index("config = train.TrainConfig(steps=STEPS")
    main_run = code[start:code.index("t0 = ", start)]
    values = dict(re.findall(r"(batch_size|lr_g|lr_d)=([0-9.e-]+)", main_run))
    assert (int(values["batch_size"]), float(values["lr_g"]), float(values["lr_d"])) == (r.batch_size, r.lr_g, r.lr_d)
    assert "betas" not in main_run and TrainConfig().betas == r.betas  # chapter 07 relies on the default betas
    assert r.loss == TrainConfig().loss
