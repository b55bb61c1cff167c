"""Bad input gets a clear error naming the key, the value and what is allowed."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solo_offdiag.analysis.config import AnalysisConfig
from solo_offdiag.config import ConfigError, OffDiagMethodConfig, validate_method_cfg
from solo_offdiag.config.validate import from_mapping, to_mapping
from solo_offdiag.heads import list_heads


def _cfg(**method_kwargs):
    return {"method_kwargs": method_kwargs, "optimizer": {"lr": 1.0}, "data": {"num_large_crops": 2}}


def test_defaults() -> None:
    typed = validate_method_cfg({})
    assert typed == OffDiagMethodConfig()
    assert typed.predictor.kind == "offdiag"
    assert typed.predictor.lr is None and typed.predictor.weight_decay is None
    assert typed.analysis == AnalysisConfig()


def test_mlp_head_takes_pred_hidden_dim() -> None:
    typed = validate_method_cfg(_cfg(pred_hidden_dim=64, predictor={"kind": "mlp"}))
    assert typed.head_options() == {"hidden_dim": 64}
    typed = validate_method_cfg(_cfg(predictor={"kind": "mlp", "options": {"hidden_dim": 8}}))
    assert typed.head_options() == {"hidden_dim": 8}


def test_unknown_head_kind_lists_known() -> None:
    with pytest.raises(ConfigError) as info:
        validate_method_cfg(_cfg(predictor={"kind": "offdig"}))
    message = str(info.value)
    assert "method_kwargs.predictor.kind" in message and "'offdig'" in message
    assert "known: diagonal, directcopy, directpred, identity, linear, mlp, offdiag" in message


def test_head_dim_must_match_projector() -> None:
    with pytest.raises(ConfigError, match=r"options.dim: got 32.*proj_output_dim \(64\)"):
        validate_method_cfg(_cfg(proj_output_dim=64, predictor={"options": {"dim": 32}}))
    typed = validate_method_cfg(_cfg(proj_output_dim=64, predictor={"options": {"dim": 64}}))
    assert typed.predictor.options == {}


@pytest.mark.parametrize("lr", [-0.1, "fast", float("nan"), True])
def test_bad_head_learning_rate(lr) -> None:
    with pytest.raises(ConfigError, match="method_kwargs.predictor.lr"):
        validate_method_cfg(_cfg(predictor={"lr": lr}))


@pytest.mark.parametrize("lr", [-1, "1e-3x", float("inf"), None])
def test_bad_optimizer_learning_rate(lr) -> None:
    with pytest.raises(ConfigError, match="optimizer.lr"):
        validate_method_cfg({"optimizer": {"lr": lr}})


@pytest.mark.parametrize(
    ("method_kwargs", "suggestion"),
    [
        ({"predicter": {}}, "method_kwargs.predictor"),
        ({"predictor": {"knd": "offdiag"}}, "method_kwargs.predictor.kind"),
        ({"analysis": {"every_n_step": 5}}, "method_kwargs.analysis.every_n_steps"),
        ({"analysis": {"colapse": {}}}, "method_kwargs.analysis.collapse"),
    ],
)
def test_misspelled_key_suggests_closest(method_kwargs, suggestion) -> None:
    with pytest.raises(ConfigError, match=f"did you mean '{suggestion}'"):
        validate_method_cfg({"method_kwargs": method_kwargs})


def test_misspelled_head_option() -> None:
    with pytest.raises(ConfigError, match="no option 'int'; did you mean 'init'"):
        validate_method_cfg(_cfg(predictor={"kind": "linear", "options": {"int": "random"}}))


@pytest.mark.parametrize("crops", [1, 3, 4])
def test_num_large_crops_must_be_two(crops: int) -> None:
    with pytest.raises(ConfigError, match=f"data.num_large_crops: got {crops}; allowed: 2"):
        validate_method_cfg({"data": {"num_large_crops": crops}})


@pytest.mark.parametrize(
    ("analysis", "key"),
    [
        ({"every_n_steps": 0}, "every_n_steps"),
        ({"queue_size": -5}, "queue_size"),
        ({"embeddings": ["z", "p"]}, "embeddings"),
        ({"source": "test"}, "source"),
        ({"alpha_fit_range": [0.9, 0.1]}, "alpha_fit_range"),
        ({"collapse": {"patience": 0}}, "collapse.patience"),
    ],
)
def test_bad_analysis_values(analysis, key) -> None:
    with pytest.raises(ConfigError, match=f"method_kwargs.analysis.{key}"):
        validate_method_cfg({"method_kwargs": {"analysis": analysis}})


def test_wrong_section_type() -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        validate_method_cfg({"method_kwargs": ["offdiag"]})


@settings(deadline=None)  # validation, not timing: a loaded machine exceeded the 200 ms default
@given(
    kind=st.sampled_from(list_heads()),
    lr=st.one_of(st.none(), st.floats(0, 10)),
    wd=st.one_of(st.none(), st.floats(0, 1)),
    every=st.integers(1, 1000),
)
def test_round_trip_through_plain_mapping(kind, lr, wd, every) -> None:
    typed = validate_method_cfg(
        _cfg(predictor={"kind": kind, "lr": lr, "weight_decay": wd}, analysis={"every_n_steps": every})
    )
    again = from_mapping(OffDiagMethodConfig, to_mapping(typed), prefix="method_kwargs")
    assert again == typed


def test_head_lars_settings() -> None:
    from solo_offdiag.config import validate_method_cfg

    lars = validate_method_cfg({"method_kwargs": {"predictor": {"lars": {"trust_ratio": False}}}}).predictor.lars
    assert lars.group_settings() == {"eta": math.inf, "clip_lr": True}
    assert validate_method_cfg({}).predictor.lars.group_settings() == {}
    with pytest.raises(ConfigError, match="trust_ratio is false"):
        validate_method_cfg({"method_kwargs": {"predictor": {"lars": {"trust_ratio": False, "eta": 1.0}}}})
    with pytest.raises(ConfigError, match="act only on LARS"):
        validate_method_cfg({"optimizer": {"name": "adam"},
                             "method_kwargs": {"predictor": {"lars": {"eta": 0.1}}}})
    with pytest.raises(ConfigError, match=r"predictor\.lars\.eta"):
        validate_method_cfg({"method_kwargs": {"predictor": {"lars": {"eta": 0}}}})


def test_head_weight_decay_only_for_named_kinds() -> None:
    only_identity_init = {"weight_decay": 20.0, "weight_decay_kinds": ["offdiag", "diagonal"]}
    for kind, expected in [("offdiag", 20.0), ("diagonal", 20.0), ("mlp", None), ("linear", None)]:
        typed = validate_method_cfg(_cfg(predictor={"kind": kind, **only_identity_init}))
        assert typed.predictor.group_weight_decay() == expected, kind
    everyone = validate_method_cfg(_cfg(predictor={"kind": "mlp", "weight_decay": 0.5}))
    assert everyone.predictor.group_weight_decay() == 0.5
    with pytest.raises(ConfigError, match=r"weight_decay_kinds: unknown head 'offdiog'.*did you mean 'offdiag'"):
        validate_method_cfg(_cfg(predictor={"weight_decay_kinds": ["offdiog"]}))
    with pytest.raises(ConfigError, match=r"weight_decay_kinds: got 'offdiag'.*expected a list"):
        validate_method_cfg(_cfg(predictor={"weight_decay_kinds": "offdiag"}))


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2])
def test_head_weight_decay_start_range(bad) -> None:
    with pytest.raises(ConfigError, match=r"weight_decay_start: got .*allowed: a number in \[0, 1\)"):
        validate_method_cfg(_cfg(predictor={"weight_decay_start": bad}))


def test_output_norm_values() -> None:
    assert validate_method_cfg(_cfg()).predictor.output_norm == "none"
    assert validate_method_cfg(_cfg(predictor={"output_norm": "batch"})).predictor.output_norm == "batch"
    with pytest.raises(ConfigError, match=r"output_norm.*'bn'.*'none', 'batch'"):
        validate_method_cfg(_cfg(predictor={"output_norm": "bn"}))
