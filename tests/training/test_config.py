"""TrainConfig is the one source of training defaults, settle_recipe the one place they are decided;
`--config FILE` reads settings, flags win; TrainResult prints as docs/usage.md says."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import typer.main
import yaml

from skinfood_cli.errors import UsageError
from skinfood_cli.training.config import DEFAULTS, TrainConfig, load_config_file, settle_recipe
from skinfood_cli.training.schedule import Schedule


def _train_params():
    from skinfood_cli.cli import app

    command = next(c for c in typer.main.get_command(app).commands.values() if c.name == "train")
    return {p.name: p for p in command.params}


def test_every_train_option_takes_its_default_and_help_from_train_config():
    params = _train_params()
    for f in fields(TrainConfig):
        if f.name not in params or f.name in ("data", "epochs", "precision", "device"):
            continue  # data is required; epochs None means "keep the run's" on --resume; shared options
        assert params[f.name].default == f.default, f.name
        assert params[f.name].help == f.metadata["help"], f.name


def test_a_config_file_is_read_and_typed_flags_override_it(tmp_path, monkeypatch):
    import skinfood_cli.training.runs as runs
    from skinfood_cli.training.result import TrainResult

    seen = {}

    def fake_train(cfg, reporter):
        seen["cfg"] = cfg
        return TrainResult(tmp_path, tmp_path / "best.pt", tmp_path / "last.pt", [], None, interrupted=True)

    monkeypatch.setattr(runs, "train", fake_train)
    config = tmp_path / "config.yaml"
    # A run's config.yaml also carries versions and counts: those are read past, not refused.
    config.write_text(
        yaml.safe_dump(
            {"data": str(tmp_path), "epochs": 7, "lr": 0.003, "seed": 4, "skinfood_version": "0.0.1", "num_train": 12}
        )
    )
    from typer.testing import CliRunner

    from skinfood_cli.cli import app

    result = CliRunner().invoke(app, ["train", "--config", str(config), "--seed", "9", "--no-pretrained"])
    assert result.exit_code == 130, result.output  # the fake run says it was interrupted
    cfg = seen["cfg"]
    assert (cfg.epochs, cfg.lr, cfg.seed, cfg.pretrained) == (7, 0.003, 9, False)
    assert cfg.batch_size == DEFAULTS["batch_size"]


def test_a_config_file_with_an_unknown_or_mistyped_setting_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("epoch: 3\n")
    with pytest.raises(UsageError, match=r"unknown setting.*epoch"):
        load_config_file(bad)
    bad.write_text("epochs: three\n")
    with pytest.raises(UsageError, match="epochs should be int"):
        load_config_file(bad)
    bad.write_text("- a list\n")
    with pytest.raises(UsageError, match="mapping"):
        load_config_file(bad)
    with pytest.raises(UsageError, match="could not read"):
        load_config_file(tmp_path / "missing.yaml")


def test_a_runs_own_config_yaml_round_trips(tmp_path):
    cfg = TrainConfig(data="photos", epochs=3, classes=["acne", "rosacea"], lr=0.01)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**cfg.to_dict(), "torch_version": "2.14", "world_size": 1}))
    assert TrainConfig(**load_config_file(path)) == cfg


def test_the_schedule_warms_up_decays_and_restarts_per_phase_and_its_state_round_trips():
    sched = Schedule.for_epochs(epochs=4, frozen_epochs=1, steps_per_epoch=10)
    assert sched.phases == [(0, 10), (10, 30)] and sched.total_steps == 40
    assert sched.multiplier(0) == pytest.approx(1.0)  # warmup of one step in a 10-step phase
    assert sched.multiplier(9) < 0.1  # the head phase decayed
    assert sched.multiplier(10) < sched.multiplier(12) == pytest.approx(1.0)  # warm up again after unfreezing
    assert sched.multiplier(39) == pytest.approx(0.01, abs=0.01)
    again = Schedule([])
    again.load_state_dict(sched.state_dict())
    assert [again.multiplier(s) for s in range(40)] == [sched.multiplier(s) for s in range(40)]


# --- the recipe: every auto and unset setting, settled once --------------------------------


def test_settle_recipe_decides_the_training_rules_and_the_machines_settings():
    scratch = settle_recipe(TrainConfig(data="photos", pretrained=False, device="cpu", precision="fp32", workers=3))
    assert asdict(scratch) == {
        "pretrained": False,
        "freeze_epochs": 0,
        "backbone_lr_ratio": 1.0,
        "progressive": True,
        "augment": "light",
        "device": "cpu",
        "precision": "fp32",
        "workers": 3,  # given: it stands
        "predict_size": 224,  # light augmentation trains on whole photos: read at the same size
    }
    pretrained = settle_recipe(TrainConfig(data="photos", device="cpu"))
    assert (pretrained.freeze_epochs, pretrained.progressive, pretrained.augment) == (1, False, "strong")
    assert pretrained.precision in ("bf16", "fp32")  # auto: bf16 only where this CPU computes it natively
    from skinfood_cli.engine import default_workers

    assert pretrained.workers == default_workers("cpu")  # unset: the engine's rule, the same for inference
    frozen = settle_recipe(TrainConfig(data="photos", device="cpu", freeze_backbone=True, epochs=4))
    assert (frozen.freeze_epochs, frozen.progressive) == (4, False)  # the head alone, the whole run, one size
    with pytest.raises(UsageError, match="fp16"):
        settle_recipe(TrainConfig(data="photos", device="cpu", precision="fp16"))


@pytest.mark.parametrize(
    ("settings", "size"),
    [
        ({"arch": "efficientnet-lite0"}, 256),  # random crops at 224: whole photos a seventh larger
        ({"arch": "efficientnet-lite1"}, 272),
        ({"arch": "efficientnet-lite2"}, 296),
        ({"arch": "efficientnet-lite0", "image_size": 64}, 72),  # a multiple of 8
        ({"arch": "efficientnet-lite0", "augment": "light"}, 224),  # whole photos in training: as trained
        ({"arch": "efficientnet-lite0", "freeze_backbone": True}, 224),  # the head learns whole photos
        ({"pretrained": False, "augment": "strong"}, 256),  # the crops decide, not the weights
        ({"arch": "efficientnet-lite0", "predict_size": 320}, 320),  # given: it stands
    ],
)
def test_whole_photos_are_read_larger_after_training_on_random_crops(settings, size):
    assert settle_recipe(TrainConfig(data="photos", device="cpu", **settings)).predict_size == size


def test_a_predict_size_under_32_is_a_usage_error():
    with pytest.raises(UsageError, match="--predict-size must be at least 32"):
        TrainConfig(data="photos", predict_size=16).check()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"arch": "efficientnet-lite0", "freeze_at": 9}, "between 0 and 8 for efficientnet-lite0"),
        ({"freeze_at": -1}, "between 0 and 5 for resnet50"),
        ({"freeze_at": 2, "pretrained": False}, "--no-pretrained"),
    ],
)
def test_freeze_at_outside_the_arch_or_without_imagenet_weights_is_a_usage_error(settings, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig(data="photos", **settings).check()


def test_one_worker_rule_serves_training_and_inference(monkeypatch):
    from skinfood_cli.engine import default_workers

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert default_workers("cuda") == 8 and default_workers("cpu") == 4  # a GPU waits on decoding; a CPU computes
    assert default_workers("cuda", processes=4) == 4 and default_workers("cpu", processes=4) == 1  # torchrun
    assert default_workers("cuda", num_items=10, batch_size=32) == 0  # a handful of photos: forking costs more
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert default_workers("cpu") == 0 and default_workers("cuda") == 2


# --- what a run returns --------------------------------------------------------------------


def test_train_result_prints_its_best_epoch_and_trust_summary_as_docs_usage_says(tmp_path):
    from skinfood_cli.training import BestEpoch, TrainResult, TrustSummary

    row = {"epoch": 22, "phase": "full", "val_acc": 0.71, "val_macro_f1": 0.69, "val_loss": 0.95, "lr": 1e-5}
    trust = {  # as trust.fit_trust stores it in best.pt (its tensors left out here)
        "version": 1,
        "method": "knn",
        "threshold": -0.41,
        "num_val": 90,
        "conformal": {
            "rule": "lac",
            "qhat": 0.93,
            "coverage": 0.9,
            "calibration_size": 90,
            "validation_coverage": 0.91,
            "validation_mean_set_size": 2.1,
            "reason": "",
        },
    }
    best = BestEpoch.from_row(row)
    summary = TrustSummary.from_state(trust)
    assert best and best.epoch == 22 and best.val_macro_f1 == 0.69
    assert summary and summary.method == "knn" and summary.conformal and summary.conformal.calibration_size == 90
    (tmp_path / "best.pt").write_bytes(b"")
    result = TrainResult(
        tmp_path, tmp_path / "best.pt", tmp_path / "last.pt", [row], best, temperature=1.07, trust=summary
    )
    out = result.to_dict()
    assert out["validation"] == {"epoch": 22, "accuracy": 0.71, "macro_f1": 0.69, "loss": 0.95}
    assert out["scope"] == {"method": "knn", "threshold": -0.41}
    assert out["conformal"] == {
        "coverage": 0.9,
        "qhat": 0.93,
        "calibration_size": 90,
        "validation_coverage": 0.91,
        "validation_mean_set_size": 2.1,
        "reason": None,
    }
    assert (out["best"], out["last"], out["threshold"]) == (str(tmp_path / "best.pt"), None, 0.5)

    too_few = {**trust, "conformal": {**trust["conformal"], "qhat": math.inf, "reason": "too few photos"}}
    full_sets = TrustSummary.from_state(too_few)
    assert full_sets and full_sets.conformal and full_sets.conformal.reason == "too few photos"
    interrupted = TrainResult(Path(tmp_path), tmp_path / "b.pt", tmp_path / "l.pt", [], BestEpoch.from_row(None))
    out = interrupted.to_dict()
    assert out["validation"] == dict.fromkeys(("epoch", "accuracy", "macro_f1", "loss"))
    assert out["scope"] is None and out["conformal"] is None and TrustSummary.from_state(None) is None
