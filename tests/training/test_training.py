"""`skinfood train`: learning, resuming, bad data, feature caching."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from skinfood_cli.checkpoint import load_checkpoint
from skinfood_cli.training import Reporter, TrainConfig, resume, train

FAST = dict(epochs=2, image_size=32, batch_size=8, lr=2e-3, pretrained=False, device="cpu")


class Recorder(Reporter):
    def __init__(self):
        self.rows, self.skipped_items, self.messages = [], [], []

    def epoch_end(self, row):
        self.rows.append(row)

    def skipped(self, items):
        self.skipped_items = items

    def message(self, text):
        self.messages.append(text)


@pytest.mark.slow
def test_learns_a_separable_toy_set(trained):
    best = trained.best
    assert best and best.val_acc > 0.9, trained.history
    ckpt = load_checkpoint(trained.best_path)
    assert ckpt["classes"] == ["acne", "psoriasis", "vitiligo"]
    assert ckpt["image_size"] == 96 and ckpt["config"]["seed"] == 0
    assert 0.5 <= ckpt["temperature"] <= 10.0
    assert ckpt["data"]["num_val"] == len(ckpt["data"]["val_files"]) > 0


@pytest.mark.slow
def test_run_folder_holds_config_metrics_and_both_checkpoints(trained):
    run = trained.run_dir
    for name in ("best.pt", "last.pt", "metrics.csv", "config.yaml"):
        assert (run / name).is_file(), name
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert {"train_loss", "val_acc", "val_macro_f1", "images_per_s", "lr"} <= set(rows[0])
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["epochs"] == 8 and config["pretrained"] is False
    assert "torch_version" in config and "skinfood_version" in config
    # --select last (the default): best.pt is the model at the end of the schedule.
    assert load_checkpoint(run / "best.pt")["metrics"]["epoch"] == 8


@pytest.mark.slow
def test_resume_after_interruption_matches_uninterrupted_run(small_data, monkeypatch):
    plain = train(TrainConfig(data=str(small_data), name="plain", seed=3, **FAST))

    class InterruptAt(Recorder):
        calls = 0

        def step(self, step, steps, loss, acc, rate):
            InterruptAt.calls += 1
            if InterruptAt.calls == 7:  # mid-epoch 2 (36 photos, 4 steps an epoch)
                os.kill(os.getpid(), signal.SIGINT)

    stopped = train(TrainConfig(data=str(small_data), name="cut", seed=3, **FAST), InterruptAt())
    assert stopped.interrupted
    state = load_checkpoint(stopped.last_path)["train_state"]
    assert state["epoch"] == 1 and state["batch"] == 3
    finished = resume("cut")
    assert not finished.interrupted
    a = load_checkpoint(plain.last_path)["state_dict"]
    b = load_checkpoint(finished.last_path)["state_dict"]
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5), key
    assert [round(h["val_loss"], 5) for h in plain.history] == [round(h["val_loss"], 5) for h in finished.history]


@pytest.mark.slow
def test_resume_with_more_epochs_continues_the_run(small_data):
    first = train(TrainConfig(data=str(small_data), name="grow", **{**FAST, "epochs": 1}))
    more = resume("grow", epochs=2)
    assert [h["epoch"] for h in more.history] == [1, 2]
    assert more.run_dir == first.run_dir


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_130_then_resume_finishes(small_data, tmp_path):
    env = {**os.environ, "SKINFOOD_HOME": str(tmp_path / "home")}
    cmd = [
        sys.executable,
        "-m",
        "skinfood_cli",
        "train",
        "--data",
        str(small_data),
        "--name",
        "sig",
        "--epochs",
        "30",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--no-pretrained",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "home" / "runs" / "sig" / "last.pt"
    deadline = time.time() + 240
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert last.exists(), proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "skinfood train --resume sig" in err
    assert "Traceback" not in err
    state = load_checkpoint(last)["train_state"]
    r = subprocess.run(
        [*cmd[:3], "train", "--resume", "sig", "--epochs", str(state["epoch"] + 1)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "model saved to" in r.stderr


def test_broken_files_are_skipped_listed_and_strict_refuses(small_data, cli, tmp_path):
    acne = small_data / "train" / "acne"
    (acne / "empty.jpg").write_bytes(b"")
    (acne / "text.jpg").write_text("not a picture")
    good = (acne / "acne_0000.jpg").read_bytes()
    (acne / "truncated.jpg").write_bytes(good[: len(good) // 2])
    rec = Recorder()
    result = train(TrainConfig(data=str(small_data), name="skips", **{**FAST, "epochs": 1}), rec)
    skipped = {Path(p).name: reason for p, reason in rec.skipped_items}
    assert set(skipped) == {"empty.jpg", "text.jpg", "truncated.jpg"}
    assert "truncated" in skipped["truncated.jpg"]
    listed = (result.run_dir / "skipped.txt").read_text()
    assert all(name in listed for name in skipped)
    r = cli("train", "--data", small_data, "--strict", "--no-pretrained", "--epochs", "1")
    assert r.exit_code == 2 and "--strict" in r.stderr


@pytest.mark.parametrize(
    "layout, message",
    [
        ("missing", "data folder not found"),
        ("empty", "no class folders"),
        ("single", "only one class"),
        ("mismatch", "only in test/: eczema"),
        ("unusable", "no usable image: vitiligo"),
        ("unknown-class", "--classes names unknown folders"),
    ],
)
def test_bad_layouts_exit_2_with_one_line(layout, message, small_data, tmp_path, cli):
    data = small_data
    args = []
    if layout == "missing":
        data = tmp_path / "nope"
    elif layout == "empty":
        data = tmp_path / "empty"
        data.mkdir()
    elif layout == "single":
        data = tmp_path / "one"
        shutil.copytree(small_data / "train" / "acne", data / "acne")
    elif layout == "mismatch":
        (small_data / "test" / "eczema").mkdir()
    elif layout == "unusable":
        for f in (small_data / "train" / "vitiligo").iterdir():
            f.write_text("broken")
    elif layout == "unknown-class":
        args = ["--classes", "acne,nosuch"]
    r = cli("train", "--data", data, "--no-pretrained", "--epochs", "1", *args)
    assert r.exit_code == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert message in lines[-1] and lines[-1].startswith("error:")
    assert "Traceback" not in r.stderr
    if layout != "unusable":  # that one first lists the files it could not read
        assert len(lines) == 1


def test_class_subset_and_plain_class_folder_layout(small_data, tmp_path):
    result = train(
        TrainConfig(data=str(small_data), name="subset", classes=["acne", "Vitiligo"], **{**FAST, "epochs": 1})
    )
    assert load_checkpoint(result.best_path)["classes"] == ["acne", "vitiligo"]
    flat = tmp_path / "flat"
    shutil.copytree(small_data / "train", flat)
    result = train(TrainConfig(data=str(flat), name="flat", **{**FAST, "epochs": 1}))
    ckpt = load_checkpoint(result.best_path)
    assert ckpt["data"]["layout"] == "class-folders" and ckpt["data"]["num_val"] > 0


def test_split_is_stratified_and_seeded(small_data):
    from skinfood_cli.data.dataset import discover_dataset

    a = discover_dataset(small_data, val_fraction=0.25, seed=1)
    b = discover_dataset(small_data, val_fraction=0.25, seed=1)
    c = discover_dataset(small_data, val_fraction=0.25, seed=2)
    assert a.val == b.val and a.val != c.val
    per_class = [sum(1 for _, label in a.val if label == k) for k in range(3)]
    assert per_class == [4, 4, 4]  # round(14 * 0.25) of each class
    assert not set(a.val) & set(a.train)


def test_without_a_val_folder_a_tenth_of_each_class_calibrates_and_the_rest_trains(tmp_path):
    # The split only calibrates (temperature, sets, scope cut): every photo beyond that trains.
    from skinfood_cli.data.dataset import discover_dataset
    from skinfood_cli.data.synthetic import make_dataset

    data = make_dataset(tmp_path / "d", ["a", "b"], train_per_class=30, test_per_class=1, size=(24, 20))
    ds = discover_dataset(data)
    assert [sum(1 for _, label in ds.val if label == k) for k in range(2)] == [3, 3]
    assert len(ds.train) == 54
    assert TrainConfig(data=str(data)).val_fraction == 0.1  # `skinfood train` holds out the same share


def test_freeze_backbone_runs_the_backbone_in_the_first_epoch_only(small_data, monkeypatch):
    from torchvision.models.resnet import ResNet

    calls = {"n": 0}
    original = ResNet.forward

    def counting(self, x):
        calls["n"] += 1
        return original(self, x)

    monkeypatch.setattr(ResNet, "forward", counting)

    class PerEpoch(Recorder):
        def __init__(self):
            super().__init__()
            self.calls = []

        def epoch_start(self, epoch, epochs, steps, phase):
            self.start = calls["n"]

        def epoch_end(self, row):
            self.calls.append(calls["n"] - self.start)

    rec = PerEpoch()
    result = train(TrainConfig(data=str(small_data), name="frozen", freeze_backbone=True, **{**FAST, "epochs": 4}), rec)
    assert len(result.history) == 4
    # Epoch 1 computed the features before its epoch_start, epochs 2-4 never call the network.
    assert rec.calls == [0, 0, 0, 0]
    assert any("features" in m for m in rec.messages)
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < first["train_loss"]


def test_invalid_settings_are_usage_errors(cli, small_data):
    r = cli("train", "--data", small_data, "--epochs", "0", "--no-pretrained")
    assert r.exit_code == 2 and "--epochs" in r.stderr
    r = cli("train", "--data", small_data, "--batch-size", "1", "--no-pretrained")
    assert r.exit_code == 2 and "--batch-size" in r.stderr
    r = cli("train", "--resume", "nosuch")
    assert r.exit_code == 2 and "nosuch" in r.stderr


@pytest.mark.slow
def test_a_disk_too_small_for_the_checkpoints_is_named_before_the_first_epoch(small_data, cli, monkeypatch):
    import skinfood_cli.training.loop as training
    from skinfood_cli.model import build_model

    free = {"bytes": 10**12}
    real = shutil.disk_usage
    monkeypatch.setattr(training.shutil, "disk_usage", lambda p: real(p)._replace(free=free["bytes"]))
    args = [
        "train",
        "--data",
        small_data,
        "--no-pretrained",
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--quiet",
    ]
    r = cli(*args, "--name", "roomy")
    assert r.exit_code == 0 and "MB free" not in r.stderr, r.stderr
    # The estimate is what a run really holds at its peak: best.pt, last.pt and last.pt's next copy.
    run = Path(os.environ["SKINFOOD_HOME"]) / "runs" / "roomy"
    peak = (run / "best.pt").stat().st_size + 2 * (run / "last.pt").stat().st_size
    need = training.checkpoint_bytes(build_model(3, None))
    assert need == pytest.approx(peak, rel=0.02)
    r = cli(*args, "--name", "head-only", "--freeze-backbone")  # AdamW keeps moments of the head alone
    assert r.exit_code == 0 and "MB free" not in r.stderr, r.stderr
    run = run.with_name("head-only")
    peak = (run / "best.pt").stat().st_size + 2 * (run / "last.pt").stat().st_size
    assert training.checkpoint_bytes(build_model(3, None), head_only=True) == pytest.approx(peak, rel=0.02)

    free["bytes"] = 50 * 10**6
    r = cli(*args, "--name", "cramped")
    assert r.exit_code == 0, r.stderr  # a warning, not a refusal: the estimate may be wrong for a disk
    (line,) = [line for line in r.stderr.splitlines() if line.startswith("warning:") and "MB free" in line]
    assert "50 MB free" in line and f"{need / 1e6:.0f} MB" in line and "skinfood models" in line


def test_existing_run_name_is_not_overwritten(small_data, cli):
    train(TrainConfig(data=str(small_data), name="taken", **{**FAST, "epochs": 1}))
    r = cli("train", "--data", small_data, "--name", "taken", "--no-pretrained", "--epochs", "1")
    assert r.exit_code == 2 and "already exists" in r.stderr


def test_balance_weights_the_loss_by_inverse_frequency(small_data):
    for f in sorted((small_data / "train" / "acne").iterdir())[:8]:
        f.unlink()
    from skinfood_cli.data.dataset import discover_dataset
    from skinfood_cli.paths import new_run_dir
    from skinfood_cli.training import Trainer, settle_recipe

    cfg = TrainConfig(data=str(small_data), balance=True, **FAST)
    ds = discover_dataset(small_data, seed=0)
    trainer = Trainer(cfg, settle_recipe(cfg), ds, new_run_dir("bal"), Reporter())
    weight = trainer.criterion.weight
    assert weight[0] > weight[1] == pytest.approx(weight[2])


def test_the_trainer_runs_on_the_recipe_it_is_given_not_on_the_config(small_data):
    from dataclasses import replace

    from skinfood_cli.data.dataset import discover_dataset
    from skinfood_cli.paths import new_run_dir
    from skinfood_cli.training import Trainer, settle_recipe

    cfg = TrainConfig(data=str(small_data), **FAST)  # from scratch: no head phase, the machine's precision
    recipe = replace(settle_recipe(cfg), freeze_epochs=1, precision="fp32", workers=0, progressive=False)
    trainer = Trainer(cfg, recipe, discover_dataset(small_data, seed=0), new_run_dir("given"), Reporter())
    steps = trainer.batches.steps()
    assert trainer.schedule.phases == [(0, steps), (steps, steps)]  # the recipe's head-only epoch, then one more
    assert trainer.frozen(0) and not trainer.frozen(1)
    assert (trainer.device.type, trainer.precision.name) == ("cpu", "fp32")
    assert trainer._train_loader().num_workers == 0
    assert trainer.epoch_image_size() == 32
