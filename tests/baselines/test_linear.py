from __future__ import annotations

import numpy as np
import pytest

from micronbert.baselines import LinearReadout, LinearReadoutConfig


def test_readout_learns_a_linear_rule_and_standardises_with_the_training_set():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 3)) * [1.0, 100.0, 0.01] + [0.0, 500.0, 0.0]
    labels = (features[:, 1] > 500.0).astype(int)  # a feature far from unit scale carries the class
    readout = LinearReadout(2, LinearReadoutConfig(max_iter=100)).fit(features, labels)
    assert (readout.predict_proba(features).argmax(axis=1) == labels).mean() > 0.95
    shifted = LinearReadout(2, LinearReadoutConfig(max_iter=100)).fit(features + 1e3, labels)
    np.testing.assert_allclose(shifted.predict_proba(features + 1e3), readout.predict_proba(features), atol=1e-6)


def test_readout_rejects_bad_input():
    readout = LinearReadout(3)
    with pytest.raises(RuntimeError, match="before fit"):
        readout.predict_proba(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="non-empty"):
        readout.fit(np.zeros((0, 4)), [])
    with pytest.raises(ValueError, match="vector of 2"):
        readout.fit(np.zeros((2, 4)), [0])
    readout.fit(np.eye(3), [0, 1, 2])
    with pytest.raises(ValueError, match=r"shape \(samples, 3\)"):
        readout.predict_proba(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="max_iter"):
        LinearReadoutConfig(max_iter=0)
