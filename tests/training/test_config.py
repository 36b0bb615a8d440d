"""TrainConfig is the one source of training defaults; `--config FILE` reads settings, flags win."""

from __future__ import annotations

from dataclasses import fields

import pytest
import typer.main
import yaml

from skinfood_cli.errors import UsageError
from skinfood_cli.training.config import DEFAULTS, TrainConfig, load_config_file
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
    from skinfood_cli.training.config import TrainResult

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
