"""Every stock solo-learn BYOL/SimSiam recipe composes and validates with our method in place of
its own (``method=byol_offdiag`` / ``simsiam_offdiag``), including keys solo's recipes carry that
the wrapped method ignores (SimSiam's ``temperature``: accepted with a note). The recipes come
from the solo-learn checkout the tests find ($SOLO_LEARN_CHECKOUT or /tmp/solo-src)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_CANDIDATE = Path(os.environ.get("SOLO_LEARN_CHECKOUT", "/tmp/solo-src"))
_CHECKOUT = _CANDIDATE if (_CANDIDATE / "scripts" / "pretrain").is_dir() else None
RECIPES = sorted((_CHECKOUT / "scripts" / "pretrain").glob("*/byol.yaml")) + sorted(
    (_CHECKOUT / "scripts" / "pretrain").glob("*/simsiam.yaml")) if _CHECKOUT is not None else []
_PARAMS = [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in RECIPES] or [
    pytest.param(None, marks=pytest.mark.skip(reason="no solo-learn checkout with scripts/pretrain: set SOLO_LEARN_CHECKOUT"))]


def _ours(recipe: Path) -> str:
    return "byol_offdiag" if recipe.name == "byol.yaml" else "simsiam_offdiag"


def _compose(recipe: Path):
    from solo_offdiag.solo_adapter.pretraining import compose_config

    return compose_config([f"method={_ours(recipe)}", "wandb.enabled=false"], config_name=recipe.name,
                          config_dir=recipe.parent)


@pytest.mark.parametrize("recipe", _PARAMS)
def test_stock_recipe_validates_with_our_method(recipe):
    from solo_offdiag.config import ConfigError
    from solo_offdiag.solo_adapter.methods.common import typed_method_cfg
    from solo_offdiag.solo_adapter.pretraining import config_notes, validate_cfg

    cfg = _compose(recipe)
    typed_method_cfg(cfg)  # what solo's own main_pretrain.py runs through our method class
    if cfg.data.format == "dali":  # solo's main_pretrain.py trains these; our entry point says so
        with pytest.raises(ConfigError, match="data.format: got 'dali'.*main_pretrain.py"):
            validate_cfg(cfg)
        cfg.data.format = "image_folder"
    validate_cfg(cfg)
    notes = config_notes(cfg)
    if "temperature" in cfg.method_kwargs:
        assert any("method_kwargs.temperature" in n and "no effect" in n for n in notes)
    else:
        assert notes == []


@pytest.mark.solo
@pytest.mark.parametrize("recipe", _PARAMS)
def test_stock_recipe_passes_our_methods_own_checks(recipe):
    """The method class's config step (ours, then solo's BYOL/SimSiam asserts) accepts the recipe."""
    from solo_offdiag.solo_adapter import register

    classes = register()
    cfg = _compose(recipe)
    cfg = classes[_ours(recipe)].add_and_assert_specific_cfg(cfg)
    assert cfg.method_kwargs.predictor.kind == "offdiag"


def test_a_real_typo_of_our_keys_is_still_refused():
    from solo_offdiag.config import ConfigError
    from solo_offdiag.config.schema import validate_method_cfg

    with pytest.raises(ConfigError, match="did you mean 'method_kwargs.proj_output_dim'"):
        validate_method_cfg({"method_kwargs": {"proj_output_dimm": 8}})
    with pytest.raises(ConfigError, match="temperatur"):
        validate_method_cfg({"method_kwargs": {"temperatur": 0.2}})
