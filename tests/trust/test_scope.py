"""The scope check and prediction sets, end to end on the session's tiny trained model.

The model was trained on generated "lesions" on skin-toned noise; plain colours,
text, stripes and checkerboards are pictures it should not recognise.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from conftest import parse_json

from skinfood_cli.data.synthetic import make_non_skin
from skinfood_cli.prediction import OUT_OF_SCOPE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def non_skin(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("non-skin")
    make_non_skin(folder)
    return folder


@pytest.fixture(scope="module")
def old_checkpoint(trained, tmp_path_factory) -> Path:
    """The session model as a checkpoint from before the scope check: no `trust` key."""
    ckpt = torch.load(trained.best_path, weights_only=True)
    del ckpt["trust"]
    path = tmp_path_factory.mktemp("old") / "old.pt"
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def pooled_scope_checkpoint(trained, dataset, tmp_path_factory) -> Path:
    """The session model with a scope check as skinfood fitted it before stage statistics: kNN on the
    pooled features alone, and no `stage` in its trust dict."""
    from skinfood_cli.checkpoint import model_from_checkpoint
    from skinfood_cli.data.dataset import eval_transform, gather
    from skinfood_cli.data.images import load_image
    from skinfood_cli.trust import fit_trust, pooled_features

    ckpt = torch.load(trained.best_path, weights_only=True)
    model = model_from_checkpoint(ckpt).eval()
    transform = eval_transform(int(ckpt["image_size"]), ckpt["mean"], ckpt["std"])
    samples = gather(dataset / "train", list(ckpt["classes"]))
    x = torch.stack([transform(load_image(path)) for path, _ in samples])
    y = torch.tensor([label for _, label in samples])
    with torch.no_grad():
        f, z = pooled_features(model, x)
    train, val = slice(0, None, 2), slice(1, None, 2)
    trust = fit_trust(
        f[train], z[train], y[train], f[val], z[val], y[val], temperature=float(ckpt["temperature"]), method="knn"
    )
    ckpt["trust"] = {**trust, "version": 1}
    path = tmp_path_factory.mktemp("pooled-scope") / "pooled.pt"
    torch.save(ckpt, path)
    return path


def _records(cli, *args) -> list[dict]:
    done = cli("predict", *args, "--format", "json")
    assert done.exit_code == 0, done.stderr
    return parse_json(done.stdout)


def test_checkpoint_carries_the_scope_check_and_calibrated_sets(trained):
    ckpt = torch.load(trained.best_path, weights_only=True)  # plain tensors and floats only
    trust = ckpt["trust"]
    assert trust["method"] in ("max_softmax", "energy", "mahalanobis", "knn")
    assert trust["num_val"] == trust["conformal"]["calibration_size"] > 0
    assert trust["conformal"]["coverage"] == 0.9
    assert 0.0 <= trust["conformal"]["validation_coverage"] <= 1.0
    # The score reads the pooled features beside the stride-16 stage's channel statistics.
    from skinfood_cli.checkpoint import model_from_checkpoint
    from skinfood_cli.model import scope_stage

    model = model_from_checkpoint(ckpt)
    assert trust["stage"] == scope_stage(model)
    channels = model.feature_info[trust["stage"]]["num_chs"]
    assert trust["score"]["bank"].shape == (trust["num_train"], model.num_features + 2 * channels)


def test_a_scope_check_from_before_stage_statistics_predicts_and_exports_as_it_did(
    cli, pooled_scope_checkpoint, non_skin, tmp_path
):
    pytest.importorskip("onnxruntime")
    from skinfood_cli.export import export_model

    records = _records(cli, non_skin, "--model", pooled_scope_checkpoint, "--precision", "fp32")
    assert all(isinstance(r["scope_score"], float) for r in records) and any(not r["in_scope"] for r in records)
    result = export_model(pooled_scope_checkpoint, fmt="onnx", output=tmp_path / "p.onnx", verify_images=8)
    assert result.verification.passed and result.verification.scope_max_rel_diff <= 1e-4
    for a, b in zip(_records(cli, non_skin, "--model", tmp_path / "p.onnx"), records):
        assert a["scope_score"] == pytest.approx(b["scope_score"], rel=1e-4, abs=1e-4)


def test_non_skin_pictures_are_flagged_more_than_the_models_own_test_photos(cli, model_path, dataset, non_skin):
    outside = _records(cli, non_skin, "--model", model_path)
    inside = _records(cli, dataset / "test", "--model", model_path)

    def flagged(records):
        return sum(not r["in_scope"] for r in records) / len(records)

    # The tiny session model (96 px, 8 epochs on generated photos) is no real one: the figures a
    # user can expect are measured on real photos (docs/trust.md); here the order must hold.
    assert flagged(outside) > flagged(inside), (flagged(outside), flagged(inside))
    mean = lambda records: sum(r["scope_score"] for r in records) / len(records)  # noqa: E731
    assert mean(outside) < mean(inside)
    for rec in outside + inside:
        assert isinstance(rec["scope_score"], float) and rec["in_scope"] == (rec["scope_score"] >= 0)
        assert rec["prediction_set"] and rec["prediction_set"][0] == rec["label"]
        assert set(rec["prediction_set"]) <= {"acne", "psoriasis", "vitiligo"}
        if rec["in_scope"]:
            assert rec["uncertain"] == (len(rec["prediction_set"]) > 1)
    out = next(r for r in outside if not r["in_scope"])
    # Scripts keep the top-k; the description is the sentence, not a condition's.
    assert out["top_k"] and out["description"] == OUT_OF_SCOPE["en"] and out["advice"] is None


def test_human_output_leads_with_the_sentence_in_both_languages(cli, model_path, non_skin):
    flagged = next(Path(r["path"]) for r in _records(cli, non_skin, "--model", model_path) if not r["in_scope"])
    for lang in ("en", "ko"):
        done = cli("predict", flagged, "--model", model_path, "--lang", lang)
        assert done.exit_code == 0
        text = " ".join(done.stdout.split())
        assert " ".join(OUT_OF_SCOPE[lang].split()[:4]) in text
        assert text.index(OUT_OF_SCOPE[lang].split()[0]) < text.index("%")  # before the closest class
    csv = cli("predict", flagged, "--model", model_path, "--format", "csv").stdout.splitlines()
    assert csv[0].endswith("in_scope,scope_score,prediction_set,quality,error") and ",false," in csv[1]


def test_explain_record_and_picture_say_out_of_scope(cli, model_path, non_skin, tmp_path):
    flagged = next(Path(r["path"]) for r in _records(cli, non_skin, "--model", model_path) if not r["in_scope"])
    done = cli("explain", flagged, "--model", model_path, "--format", "json", "--output", tmp_path / "x.png")
    assert done.exit_code == 0
    rec = parse_json(done.stdout)[0]
    assert rec["in_scope"] is False and rec["prediction_set"] and isinstance(rec["scope_score"], float)
    human = cli("explain", flagged, "--model", model_path, "--lang", "ko", "--output", tmp_path / "y.png")
    assert OUT_OF_SCOPE["ko"].split()[0] in human.stdout


def test_evaluate_ood_reports_auroc_flagged_and_coverage(cli, model_path, non_skin, tmp_path):
    done = cli(
        "evaluate",
        "--model",
        model_path,
        "--ood",
        non_skin,
        "--format",
        "json",
        "--bootstrap",
        "0",
        "--report",
        tmp_path / "report",
    )
    assert done.exit_code == 0, done.stderr
    trust = parse_json(done.stdout)["trust"]
    assert trust["scope_check"] and 0 <= trust["test_flagged"] <= 1
    assert 0 <= trust["test_coverage"] <= 1 and 1 <= trust["test_mean_set_size"] <= 3
    (ood,) = trust["ood"]
    assert ood["folder"] == str(non_skin) and ood["num_images"] == 12
    assert ood["auroc"] > 0.7 and ood["flagged"] > trust["test_flagged"]
    saved = parse_json((tmp_path / "report" / "metrics.json").read_text())
    assert saved["trust"] == trust
    header = (tmp_path / "report" / "predictions.csv").read_text().splitlines()[0]
    assert header.endswith("in_scope,scope_score,prediction_set")


def test_an_old_checkpoint_loads_and_says_once_it_has_no_scope_check(cli, old_checkpoint, dataset):
    done = cli("predict", dataset / "test" / "acne", "--model", old_checkpoint, "--format", "json")
    assert done.exit_code == 0
    assert done.stderr.count("no scope check") == 1
    records = parse_json(done.stdout)
    assert len(records) > 1
    assert all(
        r["in_scope"] is True and r["scope_score"] is None and r["prediction_set"] == [r["label"]] for r in records
    )


def test_onnx_scope_output_matches_pytorch_and_an_old_export_still_loads(
    cli, trained, old_checkpoint, dataset, non_skin, tmp_path
):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from skinfood_cli.export import export_model

    result = export_model(trained.best_path, fmt="onnx", output=tmp_path / "m.onnx", verify_images=16)
    assert result.verification.passed
    assert result.verification.scope_max_rel_diff is not None and result.verification.scope_max_rel_diff <= 1e-4
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "scope_score"]
    from_onnx = _records(cli, non_skin, "--model", tmp_path / "m.onnx")
    from_torch = _records(cli, non_skin, "--model", trained.best_path, "--precision", "fp32")
    for a, b in zip(from_onnx, from_torch):
        assert a["scope_score"] == pytest.approx(b["scope_score"], rel=1e-4, abs=1e-4)
        assert a["prediction_set"] == b["prediction_set"]

    old = export_model(old_checkpoint, fmt="onnx", output=tmp_path / "old.onnx", verify_images=8)
    assert old.verification.passed and old.verification.scope_max_rel_diff is None
    done = cli("predict", dataset / "test" / "acne", "--model", tmp_path / "old.onnx", "--format", "json")
    assert done.exit_code == 0 and done.stderr.count("no scope check") == 1
    assert all(r["in_scope"] is True for r in parse_json(done.stdout))


def test_resume_keeps_the_scope_check(trained, tmp_path, monkeypatch, dataset):
    from skinfood_cli.training import resume

    home = tmp_path / "resume-home"
    shutil.copytree(trained.run_dir, home / "runs" / "again")
    monkeypatch.setenv("SKINFOOD_HOME", str(home))
    result = resume("again", epochs=int(torch.load(trained.last_path, weights_only=False)["train_state"]["epoch"]) + 1)
    assert result.trust and result.trust.conformal and result.trust.conformal.calibration_size > 0
    assert "trust" in torch.load(result.best_path, weights_only=True)
