from __future__ import annotations

import inspect

import numpy as np
import pytest

from micronbert.baselines.lbptop import LBPTOPConfig, lbptop_features
from micronbert.baselines.tgsr import (
    TGSR,
    TGSR_LBPTOP,
    TGSRConfig,
    region_grouped_features,
    region_groups,
)

GROUPS = np.repeat(np.arange(6), 5)


def _domain(rng: np.random.Generator, samples: int, shifted: bool) -> tuple[np.ndarray, np.ndarray]:
    """Three balanced classes. Group 0 carries the class cleanly, group 1 noisily, groups 2–5 are noise. The shifted
    domain scales group 0 by 1.3 and moves its class-0 feature by +1.5 (a per-database offset and gain)."""
    labels = np.arange(samples) % 3
    features = rng.normal(size=(samples, 30))
    one_hot = np.eye(5)[labels]
    features[:, :5] = one_hot + 0.3 * rng.normal(size=(samples, 5))
    features[:, 5:10] = one_hot + 0.9 * rng.normal(size=(samples, 5))
    if shifted:
        features[:, :5] = 1.3 * features[:, :5] + np.array([1.5, 0.0, 0.0, 0.0, 0.0])
    return features, labels


def _two_domains(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    source, source_labels = _domain(rng, 150, shifted=False)
    target, target_labels = _domain(rng, 150, shifted=True)
    return source, source_labels, target, target_labels


def test_the_transfer_term_beats_the_same_regression_without_it_under_a_domain_shift():
    for seed in range(3):
        source, source_labels, target, target_labels = _two_domains(seed)
        plain = TGSR(3, TGSRConfig(transfer_weight=0.0)).fit(source, source_labels, target, GROUPS)
        transfer = TGSR(3, TGSRConfig()).fit(source, source_labels, target, GROUPS)
        plain_accuracy = (plain.predict(target) == target_labels).mean()
        transfer_accuracy = (transfer.predict(target) == target_labels).mean()
        assert transfer_accuracy >= plain_accuracy + 0.05 and transfer_accuracy >= 0.85
        # both fit the source domain, where there is no shift
        assert (plain.predict(source) == source_labels).mean() >= 0.9
        assert (transfer.predict(source) == source_labels).mean() >= 0.9


def test_a_strong_group_penalty_zeroes_the_noise_groups():
    source, source_labels, target, _ = _two_domains(0)
    model = TGSR(3, TGSRConfig(group_penalty=0.5)).fit(source, source_labels, target, GROUPS)
    norms = model.group_norms()
    assert list(model.group_ids) == list(range(6))
    assert norms[0] > 0.05 and (norms[2:] < 1e-12).all()
    dense = TGSR(3, TGSRConfig(group_penalty=0.0)).fit(source, source_labels, target, GROUPS)
    assert (dense.group_norms() > 1e-3).all()
    empty = TGSR(3, TGSRConfig(group_penalty=1.0)).fit(source, source_labels, target, GROUPS)
    assert (empty.group_norms() == 0).all()


def test_the_objective_never_increases_and_ends_below_its_start():
    source, source_labels, target, _ = _two_domains(1)
    for config in (TGSRConfig(), TGSRConfig(group_penalty=0.3, transfer_weight=10.0, balanced=False)):
        history = np.array(TGSR(3, config).fit(source, source_labels, target, GROUPS).objective_history)
        assert len(history) > 2
        assert (np.diff(history) <= 0).all() and history[-1] < history[0]


def test_target_labels_cannot_be_given_and_the_order_of_target_rows_does_not_matter():
    parameters = list(inspect.signature(TGSR.fit).parameters)
    assert parameters == ["self", "source_features", "source_labels", "target_features_unlabelled", "groups"]
    source, source_labels, target, target_labels = _two_domains(2)
    with pytest.raises(TypeError):
        TGSR(3).fit(source, source_labels, target, GROUPS, target_labels=target_labels)
    model = TGSR(3).fit(source, source_labels, target, GROUPS)
    shuffled = TGSR(3).fit(source, source_labels, target[np.random.default_rng(0).permutation(len(target))], GROUPS)
    np.testing.assert_allclose(shuffled.decision_function(target), model.decision_function(target), atol=1e-9)


def test_probabilities_follow_the_regression_outputs():
    source, source_labels, target, _ = _two_domains(0)
    model = TGSR(3).fit(source, source_labels, target, GROUPS)
    probabilities = model.predict_proba(target)
    assert probabilities.shape == (150, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), model.decision_function(target).argmax(axis=1))


def test_region_grouped_features_nest_the_grids_and_name_their_groups():
    clip = np.random.default_rng(3).integers(0, 256, (8, 22, 22), dtype=np.uint8)  # core 2×16×16 at R = 3
    features = region_grouped_features(clip)
    groups = region_groups()
    assert features.shape == groups.shape == (85 * 177,)
    assert list(np.bincount(groups)) == [177] * 85
    regions = features.reshape(85, 3, 59)
    np.testing.assert_allclose(regions.sum(axis=2), 1.0)
    np.testing.assert_allclose(regions[0], lbptop_features(clip, TGSR_LBPTOP).reshape(3, 59))
    np.testing.assert_allclose(regions[0], regions[1:5].mean(axis=0))  # equal 8×8 quarters of the 16×16 core
    small = LBPTOPConfig(grid=(1, 1), points_xy=4, points_xt=4, points_yt=4, radius_t=1.0)
    assert region_grouped_features(clip, (1, 3), small).shape == region_groups((1, 3), small).shape == (10 * 45,)


def test_tgsr_runs_on_region_grouped_features_of_clips():
    rng = np.random.default_rng(4)
    clips = rng.integers(0, 256, (16, 8, 22, 22), dtype=np.uint8)
    features = np.stack([region_grouped_features(clip, (1, 2)) for clip in clips])
    model = TGSR(3, TGSRConfig(max_iter=50)).fit(features[:10], np.arange(10) % 3, features[10:], region_groups((1, 2)))
    assert model.predict_proba(features[10:]).shape == (6, 3) and len(model.group_norms()) == 5


def test_bad_inputs_and_settings_are_refused_with_clear_messages():
    source, source_labels, target, _ = _two_domains(0)
    model = TGSR(3)
    with pytest.raises(RuntimeError, match="before fit"):
        model.predict_proba(target)
    with pytest.raises(ValueError, match=r"target_features_unlabelled must be a non-empty \(samples, 30\)"):
        model.fit(source, source_labels, target[:, :29], GROUPS)
    with pytest.raises(ValueError, match="groups must give an integer group id for each of the 30"):
        model.fit(source, source_labels, target, GROUPS[:29])
    with pytest.raises(ValueError, match="groups"):
        model.fit(source, source_labels, target, GROUPS.astype(float))
    with pytest.raises(ValueError, match=r"source_labels must lie in \[0, 3\)"):
        model.fit(source, source_labels + 1, target, GROUPS)
    with pytest.raises(ValueError, match="one class"):
        model.fit(source, np.zeros(150, dtype=int), target, GROUPS)
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.full_like(source, np.nan), source_labels, target, GROUPS)
    with pytest.raises(ValueError, match="group_penalty"):
        TGSRConfig(group_penalty=-0.1)
    with pytest.raises(ValueError, match="tol"):
        TGSRConfig(tol=0.0)
    with pytest.raises(ValueError, match="grid level"):
        region_groups((0,))
    with pytest.raises(ValueError, match="uint8"):
        region_grouped_features(np.zeros((8, 22, 22)))
    model.fit(source, source_labels, target, GROUPS)
    with pytest.raises(ValueError, match=r"\(samples, 30\)"):
        model.predict(target[:, :5])
