"""Tests for skinfood_cli.metrics: small cases worked out by hand (pure numpy, fast)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skinfood_cli import metrics as M


def arrays_from_cm(cm) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) that produce exactly the confusion matrix `cm`."""
    y_true, y_pred = [], []
    for i, row in enumerate(cm):
        for j, n in enumerate(row):
            y_true += [i] * n
            y_pred += [j] * n
    return np.array(y_true), np.array(y_pred)


# A 4-class case with every awkward corner at once:
#   class 2 has one example and is never predicted      -> precision 0 (no predictions)
#   class 3 has no examples but is predicted once        -> recall 0, left out of macro averages
CM4 = [
    [3, 1, 0, 1],
    [2, 2, 0, 0],
    [1, 0, 0, 0],
    [0, 0, 0, 0],
]


# --- confusion matrix and per-class scores -----------------------------------------


def test_confusion_matrix_rows_are_true_columns_predicted():
    cm = M.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert cm.dtype.kind == "i"


def test_confusion_matrix_has_all_classes_even_unseen_ones():
    cm = M.confusion_matrix([0, 0], [0, 0], 4)
    assert cm.shape == (4, 4)
    assert cm.sum() == 2 and cm[0, 0] == 2


def test_confusion_matrix_round_trips_the_hand_case():
    y_true, y_pred = arrays_from_cm(CM4)
    assert M.confusion_matrix(y_true, y_pred, 4).tolist() == CM4


def test_per_class_scores_by_hand():
    s = M.per_class_scores(np.array(CM4))
    # predicted (column sums) = [6, 3, 0, 1]; support (row sums) = [5, 4, 1, 0]; tp = [3, 2, 0, 0]
    assert s["precision"] == pytest.approx([3 / 6, 2 / 3, 0.0, 0.0])
    assert s["recall"] == pytest.approx([3 / 5, 2 / 4, 0.0, 0.0])
    f1_0 = 2 * 0.5 * 0.6 / (0.5 + 0.6)
    f1_1 = 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)
    assert s["f1"] == pytest.approx([f1_0, f1_1, 0.0, 0.0])
    assert s["support"].tolist() == [5, 4, 1, 0]


def test_never_predicted_class_has_precision_zero_not_nan():
    s = M.per_class_scores(np.array(CM4))
    assert CM4[2][2] == 0 and sum(row[2] for row in CM4) == 0  # column 2: never predicted
    assert s["precision"][2] == 0.0
    assert s["f1"][2] == 0.0
    assert np.isfinite(s["precision"]).all() and np.isfinite(s["recall"]).all() and np.isfinite(s["f1"]).all()


def test_class_without_examples_has_recall_zero_not_nan():
    s = M.per_class_scores(np.array(CM4))
    assert s["support"][3] == 0
    assert s["recall"][3] == 0.0
    assert s["f1"][3] == 0.0


def test_per_class_scores_of_an_empty_matrix_are_all_zero():
    s = M.per_class_scores(np.zeros((3, 3), dtype=np.int64))
    for key in ("precision", "recall", "f1"):
        assert s[key].tolist() == [0.0, 0.0, 0.0]


# --- summary metrics ---------------------------------------------------------------------


def test_macro_f1_averages_only_classes_with_examples():
    y_true, y_pred = arrays_from_cm(CM4)
    f1_0 = 2 * 0.5 * 0.6 / 1.1  # 6/11
    f1_1 = 4 / 7
    # classes 0, 1, 2 have examples (class 2's F1 is 0); class 3 has none and is left out
    assert M.macro_f1(y_true, y_pred, 4) == pytest.approx((f1_0 + f1_1 + 0.0) / 3)


def test_macro_f1_perfect_and_empty():
    assert M.macro_f1([0, 1, 2, 1], [0, 1, 2, 1], 3) == pytest.approx(1.0)
    assert M.macro_f1([], [], 3) == 0.0


def test_balanced_accuracy_is_mean_recall_over_present_classes():
    y_true, y_pred = arrays_from_cm(CM4)
    assert M.balanced_accuracy(y_true, y_pred, 4) == pytest.approx((0.6 + 0.5 + 0.0) / 3)


def test_balanced_accuracy_ignores_class_imbalance():
    # 9 of class 0 all right, 1 of class 1 wrong: accuracy 0.9 but balanced accuracy 0.5
    y_true = [0] * 9 + [1]
    y_pred = [0] * 10
    assert M.accuracy(y_true, y_pred) == pytest.approx(0.9)
    assert M.balanced_accuracy(y_true, y_pred, 2) == pytest.approx(0.5)


def test_accuracy_by_hand():
    y_true, y_pred = arrays_from_cm(CM4)
    assert M.accuracy(y_true, y_pred) == pytest.approx(5 / 10)  # trace 5 of 10
    assert M.accuracy([1, 2, 3], [1, 2, 3]) == 1.0
    assert M.accuracy([], []) == 0.0


PROBS3 = np.array(
    [
        [0.6, 0.3, 0.1],  # true 1: 2nd most probable
        [0.2, 0.3, 0.5],  # true 0: 3rd
        [0.1, 0.7, 0.2],  # true 1: 1st
        [0.3, 0.3, 0.4],  # true 2: 1st
    ]
)
Y3 = np.array([1, 0, 1, 2])


def test_top_k_accuracy_by_hand():
    assert M.top_k_accuracy(Y3, PROBS3, 1) == pytest.approx(2 / 4)
    assert M.top_k_accuracy(Y3, PROBS3, 2) == pytest.approx(3 / 4)
    assert M.top_k_accuracy(Y3, PROBS3, 3) == pytest.approx(1.0)


def test_top_k_larger_than_number_of_classes_is_clamped():
    assert M.top_k_accuracy(Y3, PROBS3, 10) == pytest.approx(1.0)
    assert M.top_k_accuracy(Y3, PROBS3, 0) == M.top_k_accuracy(Y3, PROBS3, 1)


def test_cross_entropy_by_hand():
    probs = [[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]
    assert M.cross_entropy([0, 1], probs) == pytest.approx(-(math.log(0.5) + math.log(0.8)) / 2)


def test_cross_entropy_of_a_zero_probability_is_large_but_finite():
    value = M.cross_entropy([1], [[1.0, 0.0]])
    assert math.isfinite(value)
    assert value == pytest.approx(-math.log(1e-12))


def test_cross_entropy_of_certain_right_answers_is_zero():
    assert M.cross_entropy([0, 1], [[1.0, 0.0], [0.0, 1.0]]) == pytest.approx(0.0, abs=1e-12)


# --- calibration -------------------------------------------------------------------------


def test_ece_is_zero_when_confidence_matches_accuracy():
    # 4 answers at 75% confidence, 3 of them right: perfectly calibrated
    probs = [[0.75, 0.25]] * 4
    y = [0, 0, 0, 1]
    assert M.expected_calibration_error(y, probs) == pytest.approx(0.0, abs=1e-12)


def test_ece_is_zero_for_certain_right_answers():
    assert M.expected_calibration_error([0, 1, 2], np.eye(3)) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_an_overconfident_model_by_hand():
    # bin around 0.9: 4 answers, 2 right    -> |0.50 - 0.90| = 0.40, weight 4/8
    # bin around 0.6: 4 answers, 3 right    -> |0.75 - 0.60| = 0.15, weight 4/8
    probs = [[0.9, 0.05, 0.05]] * 4 + [[0.6, 0.3, 0.1]] * 4
    y = [0, 0, 1, 2] + [0, 0, 0, 1]
    expected = 0.5 * 0.40 + 0.5 * 0.15
    assert M.expected_calibration_error(y, probs) == pytest.approx(expected)


def test_ece_of_nothing_is_zero():
    assert M.expected_calibration_error([], np.zeros((0, 3))) == 0.0


# --- bootstrap ----------------------------------------------------------------------------


def _noisy_predictions(n=60, k=3, wrong=0.25, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    pred = y.copy()
    flip = rng.random(n) < wrong
    pred[flip] = (y[flip] + 1) % k
    return y, pred


def test_bootstrap_is_reproducible_with_a_seed():
    y, pred = _noisy_predictions()
    a = M.bootstrap_ci(y, pred, 3, samples=300, seed=7)
    b = M.bootstrap_ci(y, pred, 3, samples=300, seed=7)
    assert a == b
    assert set(a) == {"accuracy", "balanced_accuracy", "macro_f1"}


def test_bootstrap_seed_changes_the_resamples():
    y, pred = _noisy_predictions()
    a = M.bootstrap_ci(y, pred, 3, samples=300, seed=7)
    c = M.bootstrap_ci(y, pred, 3, samples=300, seed=8)
    assert a != c


def test_bootstrap_interval_contains_the_point_estimate():
    y, pred = _noisy_predictions()
    ci = M.bootstrap_ci(y, pred, 3, samples=500, seed=0)
    points = {
        "accuracy": M.accuracy(y, pred),
        "balanced_accuracy": M.balanced_accuracy(y, pred, 3),
        "macro_f1": M.macro_f1(y, pred, 3),
    }
    for key, value in points.items():
        low, high = ci[key]
        assert 0.0 <= low <= value <= high <= 1.0, (key, low, value, high)
        assert high - low > 0.0  # 15 errors in 60: the interval is not a point


def test_bootstrap_of_a_perfect_classifier_is_one_one():
    y = np.array([0, 1, 2] * 10)
    ci = M.bootstrap_ci(y, y, 3, samples=200, seed=0)
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert ci[key] == pytest.approx([1.0, 1.0])


def test_bootstrap_of_nothing_or_no_samples_is_empty():
    assert M.bootstrap_ci([], [], 3) == {}
    assert M.bootstrap_ci([0, 1], [0, 1], 2, samples=0) == {}


# --- error analysis -------------------------------------------------------------------------


def test_most_confused_orders_by_count_then_names():
    classes = ["acne", "psoriasis", "vitiligo"]
    cm = np.array(
        [
            [5, 2, 3],  # acne -> psoriasis 2, acne -> vitiligo 3
            [2, 4, 0],  # psoriasis -> acne 2
            [0, 1, 6],  # vitiligo -> psoriasis 1
        ]
    )
    pairs = M.most_confused(cm, classes)
    assert pairs == [
        {"true": "acne", "predicted": "vitiligo", "count": 3},
        {"true": "acne", "predicted": "psoriasis", "count": 2},  # tie with the next: by true name
        {"true": "psoriasis", "predicted": "acne", "count": 2},
        {"true": "vitiligo", "predicted": "psoriasis", "count": 1},
    ]


def test_most_confused_leaves_out_the_diagonal_and_zeros_and_honours_limit():
    classes = ["a", "b", "c"]
    cm = np.array([[9, 0, 1], [0, 9, 0], [4, 2, 9]])
    pairs = M.most_confused(cm, classes, limit=2)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [("c", "a", 4), ("c", "b", 2)]
    assert M.most_confused(np.diag([3, 4, 5]), classes) == []


# --- temperature scaling -----------------------------------------------------------------------


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true_t = 2.5
    logits = rng.normal(0.0, 4.0, (4000, 4))
    p = _softmax(logits / true_t)
    labels = np.array([rng.choice(4, p=row) for row in p])
    t = M.fit_temperature(logits, labels)
    assert t == pytest.approx(true_t, rel=0.10)


def test_fit_temperature_recovers_an_underconfident_model():
    rng = np.random.default_rng(1)
    true_t = 0.7  # label smoothing leaves models under-confident: T < 1 must be reachable
    logits = rng.normal(0.0, 1.5, (4000, 3))
    p = _softmax(logits / true_t)
    labels = np.array([rng.choice(3, p=row) for row in p])
    assert M.fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.10)


def test_fit_temperature_stays_within_its_bounds():
    rng = np.random.default_rng(2)
    logits = rng.normal(0.0, 3.0, (200, 3))
    always_right = logits.argmax(1)  # NLL keeps falling as T -> 0
    t_low = M.fit_temperature(logits, always_right, bounds=(0.5, 10.0))
    assert 0.5 <= t_low <= 0.5 * 1.01
    unrelated = rng.integers(0, 3, 200)  # labels carry no signal: NLL falls as T grows
    shifted = logits + 50.0 * np.eye(3)[(unrelated + 1) % 3]  # confidently wrong
    t_high = M.fit_temperature(shifted, unrelated, bounds=(0.5, 10.0))
    assert 10.0 * 0.99 <= t_high <= 10.0


def test_fit_temperature_needs_twenty_examples():
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 3.0, (19, 3))
    labels = rng.integers(0, 3, 19)
    assert M.fit_temperature(logits, labels) == 1.0


# --- confidence threshold ----------------------------------------------------------------------


def _binary(confidences, correct):
    """Two-class probabilities whose top answer (class 0) has the given confidence."""
    probs = np.array([[c, 1 - c] for c in confidences])
    labels = np.array([0 if ok else 1 for ok in correct])
    return probs, labels


def test_confidence_threshold_by_hand():
    conf = [0.95 - 0.02 * i for i in range(20)]  # 0.95, 0.93, ..., 0.57
    # the 9 most confident are right, then all wrong: running precision is 9/10 = 0.9 at the
    # 10th answer and below 0.9 after it, so the threshold is the 10th confidence, 0.77
    correct = [True] * 9 + [False] * 11
    probs, labels = _binary(conf, correct)
    assert M.confidence_threshold(probs, labels, target_precision=0.9) == pytest.approx(0.77)


def test_confidence_threshold_keeps_the_largest_prefix_meeting_the_target():
    conf = [0.95 - 0.02 * i for i in range(20)]
    # first answer wrong (prefix precision 0), then 19 right: 19/20 = 0.95 >= 0.9 for all 20
    correct = [False] + [True] * 19
    probs, labels = _binary(conf, correct)
    assert M.confidence_threshold(probs, labels, target_precision=0.9) == pytest.approx(0.57)


def test_confidence_threshold_is_clamped_to_floor_and_ceiling():
    conf = [0.99 - 0.02 * i for i in range(20)]  # down to 0.61
    probs, labels = _binary(conf, [True] * 20)  # always right: the threshold would be 0.61
    assert M.confidence_threshold(probs, labels, floor=0.7) == pytest.approx(0.7)
    assert M.confidence_threshold(probs, labels, floor=0.3) == pytest.approx(0.61)
    probs, labels = _binary(conf, [False] * 20)  # never right: nothing meets the target
    assert M.confidence_threshold(probs, labels, ceiling=0.95) == pytest.approx(0.95)


def test_confidence_threshold_with_too_few_examples_is_one_half():
    probs, labels = _binary([0.9] * 19, [True] * 19)
    assert M.confidence_threshold(probs, labels) == 0.5
