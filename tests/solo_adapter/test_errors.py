"""Bad input fails when the method is built (before any training), with a clear message."""

from __future__ import annotations

import pytest

from solo_offdiag.config import ConfigError

pytestmark = pytest.mark.solo


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda c: c.method_kwargs.predictor.update(kind="offdag"), r"unknown head 'offdag' \(did you mean 'offdiag'\?\); known: .*linear.*offdiag"),
        (lambda c: c.method_kwargs.predictor.update(options={"dim": 8}), r"predictor.options.dim: got 8.*proj_output_dim \(16\)"),
        (lambda c: c.method_kwargs.predictor.update(lr=-1.0), r"method_kwargs.predictor.lr"),
        (lambda c: c.method_kwargs.predictor.update(lr="fast"), r"method_kwargs.predictor.lr"),
        (lambda c: c.optimizer.update(lr="fast"), r"optimizer.lr: got 'fast'"),
        (lambda c: c.method_kwargs.predictor.update(weight_decy=0.1), r"weight_decy'; did you mean 'method_kwargs.predictor.weight_decay'"),
        (lambda c: c.method_kwargs.update(predicter={}), r"predicter'; did you mean 'method_kwargs.predictor'"),
        (lambda c: c.data.update(num_large_crops=3), r"data.num_large_crops: got 3"),
        (lambda c: c.method_kwargs.predictor.update(static_lr=True, lr=0.1), r"static_lr: got true with predictor.lr"),
    ],
)
@pytest.mark.parametrize("method", ["byol_offdiag", "simsiam_offdiag"])
def test_bad_config_raises_before_training(registered_methods, solo_cfg, method, change, match):
    cfg = solo_cfg(method)
    change(cfg)
    with pytest.raises(ConfigError, match=match) as info:
        registered_methods[method](cfg)
    # Hydra apps (solo's main_pretrain.py) print a CompactHydraException as its message alone
    from hydra.errors import CompactHydraException

    assert isinstance(info.value, CompactHydraException)
