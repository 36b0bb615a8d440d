"""The photos through the engine, the answers into metrics (metrics.py) and trust figures."""

from __future__ import annotations

from skinfood_cli.errors import DataError
from skinfood_cli.evaluation.sets import EvalSet


def evaluate(
    engine,
    eval_set: EvalSet,
    *,
    top_k: int = 3,
    bootstrap: int = 1000,
    seed: int = 0,
    progress=None,
    ood: list[str] | None = None,
) -> dict:
    """Run the engine over the set and compute every metric `evaluate` reports.

    Returns the figures as a JSON-ready dict (keys: accuracy, balanced_accuracy,
    macro_f1, ci, top_k_accuracy, loss, ece, num_images, classes, confusion_matrix,
    per_class, most_confused, ..., and "predictions": one row per photo), which
    `EvalReport.from_scores` types; `evaluate_model` is the whole of `skinfood evaluate`.
    `progress`, when given, is called once per photo scored.
    """
    import numpy as np

    from skinfood_cli import metrics as M

    classes = engine.classes
    K = len(classes)
    from skinfood_cli.trust import prediction_sets

    qhat = engine.model.qhat
    labels, probs, rows, failed, scopes = [], [], [], [], []
    for result in engine.run_paths([p for p, _ in eval_set.samples]):
        true = eval_set.samples[result.index][1]
        if progress:
            progress()
        if result.error is not None:
            failed.append({"path": result.path, "error": result.error})
            continue
        p = engine.probabilities(result.logits)
        labels.append(true)
        probs.append(p)
        pred = int(np.argmax(p))
        scopes.append(result.scope)
        members = prediction_sets(p[None], qhat, engine.model.set_rule)[0] if qhat is not None else [pred]
        rows.append(
            {
                "path": result.path,
                "true": classes[true],
                "predicted": classes[pred],
                "confidence": round(float(p[pred]), 6),
                "correct": pred == true,
                "in_scope": result.scope is None or result.scope >= 0,
                "scope_score": None if result.scope is None else round(result.scope, 6),
                "prediction_set": "|".join(classes[i] for i in members),
            }
        )
    if not labels:
        raise DataError("none of the images could be read: nothing to evaluate")
    y = np.asarray(labels)
    P = np.stack(probs)
    pred = P.argmax(1)
    cm = M.confusion_matrix(y, pred, K)
    scores = M.per_class_scores(cm)
    k = max(1, min(top_k, K))
    return {
        "model": str(engine.model.path),
        "data": str(eval_set.root),
        "split": eval_set.split,
        "num_images": len(y),
        "accuracy": M.accuracy(y, pred),
        "balanced_accuracy": M.balanced_accuracy(y, pred, K),
        "macro_f1": M.macro_f1(y, pred, K),
        "ci": M.bootstrap_ci(y, pred, K, samples=bootstrap, seed=seed),
        "top_k": k,
        "top_k_accuracy": M.top_k_accuracy(y, P, k),
        "loss": M.cross_entropy(y, P),
        "ece": M.expected_calibration_error(y, P),
        "temperature": engine.model.temperature,
        "classes": list(classes),
        "confusion_matrix": cm.tolist(),
        "per_class": {
            c: {
                "precision": float(scores["precision"][i]),
                "recall": float(scores["recall"][i]),
                "f1": float(scores["f1"][i]),
                "support": int(scores["support"][i]),
                "never_predicted": bool(cm[:, i].sum() == 0),
            }
            for i, c in enumerate(classes)
        },
        "most_confused": M.most_confused(cm, list(classes)),
        "trust": _trust_report(engine, scopes, P, y, ood or []),
        "unreadable": failed,
        "skipped_unknown": eval_set.unknown,
        "predictions": rows,
    }


def _trust_report(engine, scopes, probs, labels, ood: list[str]) -> dict:
    """Scope check and prediction sets on this split, and per --ood folder (trust/measures.py)."""
    from skinfood_cli.trust.measures import ood_report, scope_summary

    conformal = (engine.model.trust or {}).get("conformal") or {}
    report = scope_summary(
        scopes, probs, labels, engine.model.qhat, conformal.get("coverage"), rule=engine.model.set_rule
    )
    report["method"] = (engine.model.trust or {}).get("method")
    if report["scope_check"]:
        from skinfood_cli.prediction import expand_inputs

        report["ood"] = [
            ood_report(engine, folder, [i.path for i in expand_inputs([folder]) if i.error is None], scopes)
            for folder in ood
        ]
    elif ood:
        report["ood"] = []
        report["note"] = "this model has no scope check: --ood folders were not scored"
    return report
