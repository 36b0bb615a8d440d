"""`--minutes`: a schedule laid out over a wall-clock budget, ended on time, resumed with what is left;
and `--select`, which weights become best.pt."""

from __future__ import annotations

import os
import signal

import pytest
import yaml

from skinfood_cli.checkpoint import load_checkpoint, save_checkpoint
from skinfood_cli.errors import UsageError
from skinfood_cli.training import Reporter, TrainConfig, resume, train
from skinfood_cli.training.schedule import MIN_LR_RATIO, Schedule, progressive_size
from skinfood_cli.training.trainer import Trainer

TINY = dict(image_size=32, batch_size=8, lr=2e-3, pretrained=False, device="cpu")


# -- the schedule over time -------------------------------------------------------------


def test_a_timed_schedule_warms_up_decays_and_ends_with_the_budget():
    sched = Schedule.for_epochs(None, 0, steps_per_epoch=10, seconds=100)
    assert sched.timed and sched.origin == 0.0
    assert sched.multiplier(0, 0.0) < 0.05  # warming up
    assert sched.multiplier(7, 10.0) == pytest.approx(1.0)  # the end of warmup (10% of the time)
    assert sched.multiplier(30, 55.0) == pytest.approx(0.5 * (1 + MIN_LR_RATIO), abs=0.01)  # half-way down
    assert sched.multiplier(60, 99.9) == pytest.approx(MIN_LR_RATIO, abs=1e-3)  # the schedule reaches its end
    assert not sched.done(10_000, 99.0) and sched.done(3, 100.0)  # time alone bounds it


def test_with_epochs_and_minutes_whichever_ends_first_ends_the_schedule():
    sched = Schedule.for_epochs(2, 0, steps_per_epoch=10, seconds=1000)
    assert sched.multiplier(19, 5.0) == pytest.approx(MIN_LR_RATIO, abs=0.02)  # steps run out first
    assert sched.done(20, 5.0) and not sched.done(19, 5.0)
    assert sched.done(5, 1000.0)  # or the time does


def test_the_timed_phase_starts_when_the_head_only_phase_ends_and_round_trips():
    sched = Schedule.for_epochs(None, 1, steps_per_epoch=10, seconds=100)
    assert sched.origin is None
    assert sched.multiplier(9, 20.0) < 0.1  # the head phase decays by its steps
    sched.start_timed_phase(5, 20.0)
    assert sched.origin is None  # still in the head phase
    sched.start_timed_phase(10, 30.0)
    sched.start_timed_phase(11, 31.0)  # acts once
    assert sched.origin == 30.0
    assert sched.progress(40, 65.0) == pytest.approx(0.5)  # half of the 70 s left when it started
    again = Schedule([])
    again.load_state_dict(sched.state_dict())
    assert [again.multiplier(s, s * 1.7) for s in range(60)] == [sched.multiplier(s, s * 1.7) for s in range(60)]


def test_epochs_default_to_ten_only_without_a_budget():
    assert TrainConfig(data="d").epochs == 10
    assert TrainConfig(data="d", minutes=15).epochs is None
    assert TrainConfig(data="d", minutes=15, epochs=3).epochs == 3
    bad_settings = ((dict(minutes=0), "--minutes"), (dict(minutes=-2), "--minutes"), (dict(select="x"), "--select"))
    for bad, message in bad_settings:
        with pytest.raises(UsageError, match=message):
            TrainConfig(data="d", **bad).check()


def test_train_refuses_a_bad_budget_in_one_line(cli, tmp_path):
    result = cli("train", "--data", str(tmp_path), "--minutes", "0")
    assert result.exit_code == 2
    assert "--minutes must be more than 0" in result.stderr and "Traceback" not in result.stderr


# -- runs ----------------------------------------------------------------------------


def _step_seconds(history) -> float:
    """The slowest epoch's time per optimizer step (validation included: an upper bound)."""
    return max(h["seconds"] / max(1, h["steps"]) for h in history)


@pytest.mark.slow
def test_a_minutes_run_ends_on_time_with_its_schedule_finished(small_data):
    budget_s = 15.0
    result = train(TrainConfig(data=str(small_data), name="budget", minutes=budget_s / 60, **TINY))
    assert not result.interrupted and result.epochs_done >= 1
    state = load_checkpoint(result.last_path)["train_state"]
    step = _step_seconds(result.history)
    assert state["seconds"] <= budget_s + step  # training stopped on time...
    assert result.minutes * 60 <= budget_s + 2 * step + 2  # ...and left room to calibrate best.pt
    assert result.history[-1]["lr"] <= 0.1 * TINY["lr"]  # the cosine ran (almost) to its end
    ckpt = load_checkpoint(result.best_path)
    assert ckpt["config"]["minutes"] == pytest.approx(0.25) and ckpt["config"]["epochs"] is None
    assert ckpt["metrics"]["epoch"] == result.history[-1]["epoch"]  # --select last


@pytest.mark.slow
def test_resume_continues_with_the_budget_that_is_left(small_data):
    budget_s = 20.0

    class InterruptAt(Reporter):
        calls = 0

        def step(self, step, steps, loss, acc, rate):
            InterruptAt.calls += 1
            if InterruptAt.calls == 6:
                os.kill(os.getpid(), signal.SIGINT)

    cut = train(TrainConfig(data=str(small_data), name="cut", minutes=budget_s / 60, **TINY), InterruptAt())
    assert cut.interrupted
    used = load_checkpoint(cut.last_path)["train_state"]["seconds"]
    assert 0 < used < budget_s
    done = resume("cut")
    assert not done.interrupted
    state = load_checkpoint(done.last_path)["train_state"]
    assert used < state["seconds"] <= budget_s + _step_seconds(done.history)
    assert done.history[-1]["lr"] <= 0.1 * TINY["lr"]
    with pytest.raises(UsageError, match="already used its"):
        resume("cut")
    more = resume("cut", minutes=budget_s / 60 + 0.25)  # a bigger budget trains on
    assert len(more.history) > len(done.history)


@pytest.mark.slow
def test_a_budget_that_runs_out_between_epochs_is_spent_for_a_resume(small_data, monkeypatch):
    # The budget can end after last.pt is saved: while saving, or as time is set aside for
    # calibration. Here the set-aside takes all that is left after the first epoch.
    def set_aside_the_rest(self, *args):
        self.schedule.seconds = self.elapsed()

    monkeypatch.setattr(Trainer, "reserve_time_for_finish", set_aside_the_rest)
    result = train(TrainConfig(data=str(small_data), name="spent", minutes=1.0, **TINY))
    assert len(result.history) == 1 and not result.interrupted
    assert load_checkpoint(result.last_path)["train_state"]["out_of_time"]
    with pytest.raises(UsageError, match="already used its"):
        resume("spent")


@pytest.mark.slow
def test_select_best_keeps_the_epoch_with_the_best_validation_macro_f1(small_data):
    result = train(TrainConfig(data=str(small_data), name="pick", epochs=3, select="best", seed=1, **TINY))
    scores = [h["val_macro_f1"] for h in result.history]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))  # the first of equals
    assert load_checkpoint(result.best_path)["metrics"]["epoch"] == best + 1


# -- progressive resizing ------------------------------------------------------------


def test_progressive_sizes_grow_to_full_size_for_the_last_quarter():
    assert [progressive_size(128, p) for p in (0.0, 0.39, 0.4, 0.74, 0.75, 1.0)] == [96, 96, 112, 112, 128, 128]
    assert progressive_size(224, 0.0) == 168 and progressive_size(32, 0.0) == 32  # never below 32 px


@pytest.mark.slow
def test_from_scratch_training_starts_small_and_ends_at_full_size(small_data):
    result = train(TrainConfig(data=str(small_data), name="grow", epochs=4, **{**TINY, "image_size": 64}))
    assert [h["image_size"] for h in result.history] == [48, 48, 56, 64]
    ckpt = load_checkpoint(result.best_path)
    assert ckpt["image_size"] == 64  # the model is used at full size
    fixed = train(TrainConfig(data=str(small_data), name="fixed", epochs=2, progressive=False, **TINY))
    assert [h["image_size"] for h in fixed.history] == [32, 32]


@pytest.mark.slow
def test_a_run_saved_before_these_options_resumes_as_it_began(small_data):
    first = train(
        TrainConfig(data=str(small_data), name="old", epochs=1, progressive=False, **{**TINY, "image_size": 64})
    )
    ckpt = load_checkpoint(first.last_path)
    # What a last.pt of earlier versions lacks (arch, augment and backbone_lr_ratio: before timm).
    for key in ("minutes", "progressive", "select", "arch", "augment", "backbone_lr_ratio"):
        del ckpt["config"][key]
    for key in ("seconds", "out_of_time", "epochs_done", "epoch_start_s"):
        del ckpt["train_state"][key]
    for key in ("device", "precision", "workers"):  # before the recipe recorded the machine's settings
        del ckpt["recipe"][key]
    ckpt["schedule"] = {"phases": ckpt["schedule"]["phases"]}
    save_checkpoint(ckpt, first.last_path)  # atomic: the tensors it holds are mapped from the old file
    more = resume("old", epochs=3)
    assert [h["image_size"] for h in more.history] == [64, 64, 64]  # no progressive resizing mid-run
    config = load_checkpoint(more.last_path)["config"]
    assert config["select"] == "best" and config["progressive"] is False
    assert config["arch"] == "resnet50" and config["augment"] == "light"  # the study's, as it began
    assert config["backbone_lr_ratio"] is None  # from scratch: one rate, then as now
    recipe = load_checkpoint(more.last_path)["recipe"]  # settled again, for the machine it goes on on
    assert (recipe["augment"], recipe["progressive"], recipe["device"]) == ("light", False, "cpu")
    assert recipe["precision"] in ("fp32", "bf16") and recipe["workers"] >= 0
    written = yaml.safe_load((more.run_dir / "config.yaml").read_text())["recipe"]
    assert written == recipe
