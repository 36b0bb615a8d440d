"""Out-of-scope scores and conformal sets on small synthetic features with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from skinfood_cli.trust import (
    KNN,
    Energy,
    Mahalanobis,
    MaxSoftmax,
    ScopedClassifier,
    WhitenedMahalanobis,
    auroc,
    calibrate,
    conformal_quantile,
    fit_score,
    fit_trust,
    in_scope_threshold,
    ledoit_wolf,
    pooled_features,
    prediction_sets,
    scope_inputs,
    score_from_state,
    set_metrics,
    stage_statistics,
    staged_features,
)


def _clusters(n_per=60, d=16, k=3, seed=0, spread=0.3):
    """k tight clusters around orthogonal-ish centres; labels; and the centres."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 3
    x = torch.cat([centres[c] + spread * torch.randn(n_per, d, generator=g) for c in range(k)])
    y = torch.arange(k).repeat_interleave(n_per)
    return x, y, centres


def test_max_softmax_and_energy_prefer_a_confident_logit():
    logits = torch.tensor([[8.0, 0.0, 0.0], [0.3, 0.2, 0.1]])
    sm = MaxSoftmax(temperature=1.0)(None, logits)
    assert sm[0] > 0.99 and sm[1] == pytest.approx(torch.softmax(logits[1], 0).max().item())
    energy = Energy(temperature=2.0)(None, logits)
    assert energy[0] > energy[1]
    assert energy[1].item() == pytest.approx(2.0 * math.log(sum(math.exp(v / 2) for v in (0.3, 0.2, 0.1))), rel=1e-5)


def test_mahalanobis_is_zero_at_a_class_mean_and_falls_with_distance():
    x, y, _centres = _clusters()
    score = Mahalanobis.fit(x, y, 3)
    logits = torch.zeros(4, 3)
    means = torch.stack([x[y == c].mean(0) for c in range(3)])
    probe = torch.stack([means[0], means[1] + 0.5, means[2] + 3.0, torch.full((16,), 40.0)])
    s = score(probe, logits)
    assert s[0].item() == pytest.approx(0.0, abs=1e-3)
    assert s[0] > s[1] > s[2] > s[3]


def test_mahalanobis_uses_the_shared_covariance_not_euclid():
    # One class stretched along axis 0: a step along the stretched axis is typical, the same step across is not.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 2, generator=g) * torch.tensor([5.0, 0.2])
    score = Mahalanobis.fit(x, torch.zeros(400, dtype=torch.long), 1)
    s = score(torch.tensor([[3.0, 0.0], [0.0, 3.0]]), torch.zeros(2, 1))
    assert s[0] > s[1] + 10


@pytest.mark.parametrize(("n", "d"), [(200, 16), (40, 120)])  # more photos than numbers, and fewer
def test_mahalanobis_in_the_eigenbasis_is_the_whitened_distance_and_old_states_still_score(n, d):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n, d, generator=g) * torch.linspace(0.05, 2.0, d)
    y = torch.arange(n) % 3
    score = Mahalanobis.fit(x, y, 3)
    assert score.basis.shape == (d, min(d, n - 3))  # the directions the class-centred photos span
    # The state skinfood stored before: the full whitening of the same shrunk covariance.
    means = torch.stack([x[y == c].mean(0) for c in range(3)]).double()
    eigvals, eigvecs = torch.linalg.eigh(ledoit_wolf(x.double() - means[y]))
    whiten = eigvecs / eigvals.sqrt()
    old = score_from_state({"method": "mahalanobis", "whiten": whiten, "means": means @ whiten})
    assert isinstance(old, WhitenedMahalanobis)
    probe = x[:9] + torch.randn(9, d, generator=g)
    torch.testing.assert_close(score(probe, None), old(probe, None), rtol=1e-4, atol=1e-3)


def test_ledoit_wolf_makes_a_wide_covariance_invertible():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20, 64, generator=g, dtype=torch.float64)  # n < D: the sample covariance is singular
    x = x - x.mean(0)
    assert torch.linalg.matrix_rank(x.T @ x / 20) < 64
    shrunk = ledoit_wolf(x)
    assert torch.linalg.eigvalsh(shrunk).min() > 0


def test_knn_distance_is_the_kth_neighbour_on_the_sphere():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    knn = KNN(bank, k=2)
    # (2, 0) normalises to (1, 0): neighbours at distance 0, sqrt(2), 2 -> the 2nd is sqrt(2)
    s = knn(torch.tensor([[2.0, 0.0]]), None)
    assert s.item() == pytest.approx(-math.sqrt(2), rel=1e-5)
    assert KNN(bank, k=1)(torch.tensor([[2.0, 0.0]]), None).item() == pytest.approx(0.0, abs=1e-6)


def test_every_score_round_trips_through_plain_state_and_torch_load(tmp_path):
    x, y, _ = _clusters()
    logits = torch.randn(len(x), 3)
    probe = x[:7] + 0.1
    for method in ("max_softmax", "energy", "mahalanobis", "knn"):
        score = fit_score(method, x, logits, y, temperature=1.5)
        path = tmp_path / f"{method}.pt"
        torch.save(score.state(), path)
        state = torch.load(path, weights_only=True)
        again = score_from_state(state)
        torch.testing.assert_close(again(probe, logits[:7]), score(probe, logits[:7]))


def test_feature_scores_flag_far_points_more_than_held_out_in_distribution():
    x, y, _centres = _clusters(seed=3)
    held, _held_y, _ = _clusters(n_per=20, seed=3)  # same centres (same seed), fresh noise
    held = held + 0.3 * torch.randn(held.shape, generator=torch.Generator().manual_seed(9))
    far = torch.randn(40, 16, generator=torch.Generator().manual_seed(4)) * 3
    for method in ("mahalanobis", "knn"):
        score = fit_score(method, x, torch.zeros(len(x), 3), y)
        assert auroc(score(held, None), score(far, None)) > 0.95


def test_in_scope_threshold_keeps_the_asked_share():
    vals = np.arange(100, dtype=float)
    cut = in_scope_threshold(vals, 0.95)
    assert cut == 4.5 and np.mean(vals >= cut) == pytest.approx(0.95)
    assert np.mean(np.arange(7.0) >= in_scope_threshold(np.arange(7.0), 0.95)) >= 0.95


def test_auroc_known_answers():
    assert auroc([3, 4, 5], [0, 1, 2]) == 1.0
    assert auroc([0, 1, 2], [3, 4, 5]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5
    assert auroc([2, 0], [1]) == 0.5


# --- conformal -----------------------------------------------------------------------


def test_conformal_quantile_uses_the_finite_sample_correction():
    scores = np.arange(1, 11) / 10  # 0.1 .. 1.0, n = 10
    # ceil(11 * 0.8) = 9 -> the 9th smallest, not the plain 80th percentile (0.8)
    assert conformal_quantile(scores, 0.8) == pytest.approx(0.9)
    # ceil(11 * 0.9) = 10 -> the largest
    assert conformal_quantile(scores, 0.9) == pytest.approx(1.0)
    # ceil(11 * 0.95) = 11 > 10: no quantile of 10 photos promises 95%
    assert math.isinf(conformal_quantile(scores, 0.95))


def test_aps_sets_grow_until_the_running_sum_reaches_qhat():
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.1, 0.7], [0.34, 0.33, 0.33]])
    assert prediction_sets(probs, 0.5) == [[0], [2], [0]]  # never empty: the top class stays
    assert prediction_sets(probs, 0.9) == [[0, 1], [2, 0], [0, 1]]
    assert prediction_sets(probs, math.inf) == [[0, 1, 2], [2, 0, 1], [0, 1, 2]]


def test_calibration_too_small_for_the_coverage_returns_full_sets_and_says_why():
    probs = np.array([[0.9, 0.05, 0.05]] * 5)
    cal = calibrate(probs, [0] * 5, coverage=0.9)
    assert math.isinf(cal.qhat) and "5 validation photo" in cal.reason and "at least 9" in cal.reason
    assert prediction_sets(probs[:1], cal.qhat) == [[0, 1, 2]]


def test_conformal_sets_cover_new_draws_at_the_asked_rate():
    rng = np.random.default_rng(0)
    k, coverage = 5, 0.9

    def draw(n):
        logits = rng.normal(0, 1.5, (n, k))
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        labels = np.array([rng.choice(k, p=p) for p in probs])  # labels truly drawn from probs
        return probs, labels

    cal_p, cal_y = draw(500)
    test_p, test_y = draw(4000)
    sizes = {}
    for rule in ("lac", "aps"):
        cal = calibrate(cal_p, cal_y, coverage, rule=rule)
        assert cal.rule == rule and cal.state()["rule"] == rule
        covered, sizes[rule] = set_metrics(test_p, test_y, cal.qhat, rule)
        assert 0.87 <= covered <= 0.94, rule
        assert 1 < sizes[rule] < k
        assert cal.n == 500 and 0.89 <= cal.achieved <= 0.95
    assert sizes["lac"] < sizes["aps"], sizes  # LAC: the smallest sets that keep the promise
    assert calibrate(cal_p, cal_y, coverage).rule == "lac"  # what new models record


def test_lac_keeps_every_class_above_one_minus_qhat_and_old_models_read_as_aps():
    from skinfood_cli.backends.base import LoadedModel

    probs = np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    assert prediction_sets(probs, 0.75, "lac") == [[0, 1], [2]]  # p >= 0.25
    assert prediction_sets(probs, 0.1, "lac") == [[0], [2]]
    model = LoadedModel(path=Path("m"), module=None, classes=["a", "b"], image_size=8, mean=(0,) * 3,
                        std=(1,) * 3, trust={"conformal": {"qhat": 0.9}})  # fmt: skip
    assert model.set_rule == "aps"
    model.trust = {"conformal": {"qhat": 0.9, "rule": "lac"}}
    assert model.set_rule == "lac"


# --- the module that carries it --------------------------------------------------


def test_fit_trust_and_scoped_classifier_agree_on_the_cut():
    from skinfood_cli.model import build_model

    torch.manual_seed(0)
    model = build_model(3).eval()
    x = torch.rand(24, 3, 32, 32)
    with torch.no_grad():
        f, z = pooled_features(model, x)
        torch.testing.assert_close(z, model(x))
    y = torch.arange(3).repeat(8)
    trust = fit_trust(f[:16], z[:16], y[:16], f[16:], z[16:], y[16:], temperature=1.0, coverage=0.5, method="knn")
    assert trust["conformal"]["calibration_size"] == 8 and trust["num_train"] == 16
    scoped = ScopedClassifier(model, trust).eval()
    with torch.no_grad():
        logits, scope = scoped(x[16:])
    torch.testing.assert_close(logits, z[16:])
    assert (scope >= 0).float().mean() >= 0.85  # the cut keeps 95% of these (validation) photos


def test_stage_statistics_are_each_channels_mean_and_spread():
    stage = torch.zeros(2, 3, 4, 4)
    stage[0, 0] = 2.0  # flat: mean 2, spread 0
    stage[1, 1, :, :2] = 1.0  # half the positions at 1: mean 0.5, spread 0.5
    stats = stage_statistics(stage.to(torch.bfloat16))
    assert stats.dtype == torch.float32 and stats.shape == (2, 6)
    torch.testing.assert_close(stats[0], torch.tensor([2.0, 0, 0, 0, 0, 0]))
    torch.testing.assert_close(stats[1], torch.tensor([0, 0.5, 0, 0, 0.5, 0]))
    assert torch.isfinite(stage_statistics(torch.randn(1, 3, 1, 1))).all()  # one position: spread 0, not NaN


def test_scope_inputs_weigh_pooled_features_and_stage_statistics_equally():
    features, stage = torch.randn(5, 8) * 100, torch.randn(5, 3, 4, 4) * 0.01
    inputs = scope_inputs(features, stage)
    assert inputs.shape == (5, 8 + 6)
    torch.testing.assert_close(inputs[:, :8].norm(dim=1), torch.ones(5))
    torch.testing.assert_close(inputs[:, 8:].norm(dim=1), torch.ones(5))
    torch.testing.assert_close(scope_inputs(features), features)  # models fitted before: pooled alone


@pytest.mark.parametrize("arch", ["resnet50", "efficientnet-lite0"])
def test_a_staged_scope_check_reads_one_forward_and_an_old_one_reads_pooled_features(arch):
    from skinfood_cli.model import build_model, scope_stage

    torch.manual_seed(0)
    model = build_model(3, arch=arch).eval()
    stage = scope_stage(model)
    x = torch.rand(24, 3, 64, 64)
    with torch.no_grad():
        f, z, kept = staged_features(model, x, stage)
        torch.testing.assert_close(z, model(x))  # the same forward as the classifier's
    assert kept.shape[1] == model.feature_info[stage]["num_chs"] and kept.shape[-1] == 64 // 16  # stride 16
    y = torch.arange(3).repeat(8)
    staged = fit_trust(scope_inputs(f[:16], kept[:16]), z[:16], y[:16], scope_inputs(f[16:], kept[16:]), z[16:],
                       y[16:], stage=stage)  # fmt: skip
    pooled = fit_trust(f[:16], z[:16], y[:16], f[16:], z[16:], y[16:])  # a trust dict from before: no stage
    assert staged["stage"] == stage and "stage" not in pooled
    assert staged["score"]["bank"].shape == (16, model.num_features + 2 * kept.shape[1])
    for trust, inputs in ((staged, scope_inputs(f, kept)), (pooled, f)):
        scoped = ScopedClassifier(model, trust).eval()
        with torch.no_grad():
            logits, scope = scoped(x)
            expected = (score_from_state(trust["score"])(inputs, z) - trust["threshold"]) / trust["scale"]
        torch.testing.assert_close(logits, z)
        torch.testing.assert_close(scope, expected)
