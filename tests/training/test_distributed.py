"""`skinfood train` under torchrun: sharding, equivalence with one process, Ctrl-C and resume.

The slow tests start the real `python -m torch.distributed.run --standalone
--nproc-per-node 2 -m skinfood_cli train ...` on the CPU (gloo), with each
rank's stdout/stderr in its own file (`--log-dir`, `--redirects 3`), so they can
check that rank 1 says nothing.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from validation import val_loss_of

import skinfood_cli
from skinfood_cli.checkpoint import load_checkpoint
from skinfood_cli.data.synthetic import make_dataset
from skinfood_cli.training import Reporter, TrainConfig, distributed
from skinfood_cli.training.sampling import EpochBatches

CLASSES = ("acne", "psoriasis", "vitiligo")


# --- without a process group ------------------------------------------------------------


def test_ranks_split_each_global_batch_like_one_process_with_n_times_the_batch():
    one = EpochBatches(50, 8, seed=3)
    ranks = [EpochBatches(50, 4, seed=3, rank=r, world=2) for r in range(2)]
    assert one.steps() == ranks[0].steps() == 50 // 8
    for epoch in (0, 1):
        for b in [one, *ranks]:
            b.epoch = epoch
        for whole, *parts in zip(one, *ranks):
            assert [len(p) for p in parts] == [4, 4]
            assert not set(parts[0]) & set(parts[1])
            assert sorted(parts[0] + parts[1]) == sorted(whole)
    # A resumed epoch skips the same global batches on every rank.
    for b in ranks:
        b.epoch, b.start = 1, 4
    later = [list(b) for b in ranks]
    one.epoch, one.start = 1, 4
    assert [sorted(x + y) for x, y in zip(*later)] == [sorted(w) for w in one]


def test_fewer_photos_than_a_global_batch_give_every_rank_the_same_count():
    ranks = [list(EpochBatches(7, 8, seed=0, rank=r, world=3)) for r in range(3)]
    assert [len(r) for r in ranks] == [1, 1, 1]
    assert [len(r[0]) for r in ranks] == [2, 2, 2]


def test_validation_shards_cover_every_photo_once_and_interleave_back():
    n, world = 11, 3
    shards = [list(distributed.shard_indices(n, r, world)) for r in range(world)]
    assert sorted(sum(shards, [])) == list(range(n))
    values = np.arange(n * 2).reshape(n, 2)
    pieces = [values[s] for s in shards]
    assert (distributed.interleave(pieces, n) == values).all()
    labels = distributed.interleave([np.array(s) for s in shards], n)
    assert labels.tolist() == list(range(n))


def test_one_process_does_not_touch_torch_distributed(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.launched() and distributed.is_main() and distributed.world_size() == 1
    with distributed.session():
        assert distributed.share(lambda x: x + 1, 1) == 2
        assert distributed.any_rank(True) and not distributed.any_rank(False)
        assert distributed.sum_ranks([1, 2.5]) == [1, 2.5]
        assert distributed.gather("x") == ["x"]
    import torch.distributed as dist

    assert not dist.is_initialized()


def test_joining_a_broken_torchrun_environment_is_one_error_line(cli, monkeypatch, tmp_path):
    make_dataset(tmp_path / "d", CLASSES, train_per_class=4, test_per_class=1, size=(40, 32))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    r = cli("train", "--data", tmp_path / "d", "--no-pretrained", "--epochs", "1")
    assert r.exit_code == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "could not join the torchrun job" in r.stderr and "MASTER_ADDR" in r.stderr


@pytest.fixture
def as_rank0_of_two(monkeypatch):
    """The CLI as rank 0 of a 2-process job, minus the process group (for checks that come first)."""
    import contextlib

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(distributed, "session", lambda **_: contextlib.nullcontext())
    monkeypatch.setattr(distributed, "share", lambda fn, *a, **k: fn(*a, **k))


def test_freeze_backbone_is_refused_under_torchrun(cli, tmp_path, as_rank0_of_two):
    data = make_dataset(tmp_path / "d", CLASSES, train_per_class=4, test_per_class=1, size=(40, 32))
    r = cli("train", "--data", data, "--no-pretrained", "--epochs", "1", "--freeze-backbone")
    assert r.exit_code == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: --freeze-backbone") and "torchrun" in line
    assert not (tmp_path / "home" / "runs").exists() or not any((tmp_path / "home" / "runs").iterdir())


def test_sync_bn_needs_gpus_and_keeps_checkpoint_names(cli, tmp_path, as_rank0_of_two):
    from skinfood_cli.model import build_model

    data = make_dataset(tmp_path / "d", CLASSES, train_per_class=4, test_per_class=1, size=(40, 32))
    r = cli("train", "--data", data, "--no-pretrained", "--epochs", "1", "--sync-bn", "--device", "cpu")
    assert r.exit_code == 2 and "--sync-bn needs CUDA" in r.stderr, r.stderr
    plain = build_model(3).state_dict()
    synced = distributed.convert_sync_batchnorm(build_model(3)).state_dict()
    assert list(synced) == list(plain)
    assert all(synced[k].shape == plain[k].shape for k in plain)


def test_resuming_with_another_number_of_processes_restarts_the_epoch(tmp_path):
    from skinfood_cli.data.dataset import discover_dataset
    from skinfood_cli.paths import new_run_dir
    from skinfood_cli.training import Trainer, settle_recipe
    from skinfood_cli.training.checkpointing import build_payload, restore

    data = make_dataset(tmp_path / "d", CLASSES, train_per_class=12, test_per_class=1, size=(40, 32))
    cfg = TrainConfig(data=str(data), epochs=3, image_size=32, batch_size=4, pretrained=False, device="cpu")
    ds = discover_dataset(data, seed=0)

    class Messages(Reporter):
        def __init__(self):
            self.said = []

        def message(self, text):
            self.said.append(text)

    recipe = settle_recipe(cfg)
    saved = Trainer(cfg, recipe, ds, new_run_dir("two"), Reporter())
    # As a 2-process job would have left it: in epoch 2, 3 global batches done.
    saved.state.epoch, saved.state.batch, saved.state.step, saved.state.world_size = 1, 3, 7, 2
    saved.state.partial = {"seen": 24, "correct": 9, "loss_sum": 20.0, "seconds": 1.0}
    ckpt = build_payload(saved, resumable=True)
    messages = Messages()
    again = Trainer(cfg, recipe, ds, new_run_dir("one"), messages)
    restore(again, ckpt)
    st = again.state
    assert (st.epoch, st.batch, st.partial, st.world_size) == (1, 0, {}, 1)
    assert st.step == 1 * again.batches.steps()
    assert any("epoch 2 starts again" in m for m in messages.said)


# --- real torchrun jobs -------------------------------------------------------------------


def _env(home: Path) -> dict:
    """The child environment: this checkout of skinfood, one thread per process, our data home."""
    package_root = str(Path(skinfood_cli.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "SKINFOOD_HOME": str(home)}


def _torchrun(logs: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "--log-dir",
        str(logs),
        "--redirects",
        "3",
        "-m",
        "skinfood_cli",
        *map(str, args),
    ]


def _rank_stderr(logs: Path) -> dict[int, str]:
    """Each rank's stderr, read from torchrun's log folder (<logs>/<run id>/attempt_0/<rank>/)."""
    found = {int(p.parent.name): p.read_text() for p in logs.glob("*/attempt_*/*/stderr.log")}
    assert sorted(found) == [0, 1], list(logs.rglob("*"))
    return found


@pytest.mark.slow
def test_two_processes_train_like_one_process_with_the_same_global_batch(tmp_path):
    # 63 training and 27 validation photos at 64 px: big enough for ResNet50 to learn the
    # toy classes in 10 epochs (~20 s per run here), so comparing accuracies means something.
    data = make_dataset(tmp_path / "d", CLASSES, train_per_class=30, test_per_class=1, size=(64, 48), lesion_scale=0.5)
    flags = [
        "--epochs",
        10,
        "--image-size",
        64,
        "--lr",
        2e-3,
        "--freeze-epochs",
        1,
        "--val-fraction",
        0.3,
        "--seed",
        0,
        "--no-pretrained",
        "--device",
        "cpu",
        "--precision",
        "fp32",
    ]
    # Both as subprocesses with one thread per process: the same arithmetic, and no
    # multi-threaded process slowed tenfold by whatever else shares the CPU.
    home, logs = tmp_path / "ddp-home", tmp_path / "logs"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "skinfood_cli",
            "train",
            "--data",
            str(data),
            "--name",
            "one",
            "--batch-size",
            "16",
            *map(str, flags),
        ],
        env=_env(tmp_path / "one-home"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    single = load_checkpoint(tmp_path / "one-home" / "runs" / "one" / "best.pt")
    with open(tmp_path / "one-home" / "runs" / "one" / "metrics.csv") as f:
        single_rows = list(csv.DictReader(f))
    r = subprocess.run(
        _torchrun(logs, "train", "--data", data, "--name", "two", "--batch-size", 8, *flags),
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    ranks = _rank_stderr(logs)
    assert r.returncode == 0, ranks[0] + ranks[1] + r.stderr[-3000:]

    # Only rank 0 writes and talks: one run folder, one set of files, rank 1 silent.
    runs = list((home / "runs").iterdir())
    assert [p.name for p in runs] == ["two"]
    assert sorted(p.name for p in runs[0].iterdir()) == [
        "MODEL_CARD.md",
        "best.pt",
        "config.yaml",
        "confusion.png",
        "curves.png",
        "last.pt",
        "metrics.csv",
    ]
    assert ranks[1] == ""
    assert ranks[0].count("model saved to") == 1 and "2 processes x batch 8 = global batch 16" in ranks[0]
    with open(runs[0] / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == list(range(1, 11))

    best = runs[0] / "best.pt"
    ckpt = load_checkpoint(best)
    assert ckpt["classes"] == single["classes"] == list(CLASSES)
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert ckpt["data"]["val_files"] == single["data"]["val_files"]
    assert load_checkpoint(runs[0] / "last.pt")["train_state"]["world_size"] == 2

    # Epoch 1 trains the head alone, BatchNorm frozen: there the two runs are the same
    # computation (same photos per step, gradients averaged over 2 x 8 = mean over 16), so
    # figures reduced across ranks must match one process to float precision.
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert float(rows[0][key]) == pytest.approx(float(single_rows[0][key]), abs=1e-4), key

    # Every rank validated with rank 0's model: best.pt alone reproduces the val loss the
    # job recorded from the logits both ranks gathered.
    assert val_loss_of(best) == pytest.approx(ckpt["metrics"]["val_loss"], abs=1e-4)

    # From epoch 2 BatchNorm normalises each process's 8 photos instead of 16, so the runs
    # drift apart: over seeds 0-2 the final accuracies differed by 1-2 of the 27 photos
    # (0.04-0.07). What the test is about is that they agree: allow 4 photos. Where they
    # land depends on the CPU's arithmetic (0.89/0.74 on an AVX-512 CPU, 0.78-0.85 on an
    # AVX2 one, fp32 both), so the only floor is "both learned": half right, chance is a third.
    ddp_acc, one_acc = ckpt["metrics"]["val_acc"], single["metrics"]["val_acc"]
    assert abs(ddp_acc - one_acc) <= 4 / 27 + 1e-9, (ddp_acc, one_acc)
    assert min(ddp_acc, one_acc) >= 0.5, (ddp_acc, one_acc)


def _start_until_first_epoch(tmp_path: Path, name: str):
    data = make_dataset(tmp_path / "d", CLASSES, train_per_class=14, test_per_class=1, size=(40, 32))
    home, logs = tmp_path / "home-ddp", tmp_path / f"logs-{name}"
    cmd = _torchrun(
        logs,
        "train",
        "--data",
        data,
        "--name",
        name,
        "--epochs",
        "30",
        "--image-size",
        "32",
        "--batch-size",
        "4",
        "--no-pretrained",
        "--device",
        "cpu",
    )
    proc = subprocess.Popen(
        cmd, env=_env(home), start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    last = home / "runs" / name / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    if not last.exists():
        proc.kill()
        pytest.fail(f"no last.pt: {proc.communicate()[1][-3000:]}")
    return proc, home, logs, last


@pytest.mark.slow
def test_ctrl_c_on_torchrun_saves_once_and_resume_under_torchrun_finishes(tmp_path):
    proc, home, logs, last = _start_until_first_epoch(tmp_path, "sig")
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals torchrun, which passes it on
    _, err = proc.communicate(timeout=120)
    # torchrun reports a signal as its own failure (exit 1 and its traceback); it would
    # SIGKILL workers still running after its 30 s grace period, and didn't need to.
    assert proc.returncode != 0
    assert "forcefully" not in err.lower(), err[-3000:]
    ranks = _rank_stderr(logs)
    assert ranks[1] == ""
    assert "interrupted: progress saved" in ranks[0] and "train --resume sig" in ranks[0]
    assert "Traceback" not in ranks[0]
    state = load_checkpoint(last)["train_state"]
    assert state["world_size"] == 2 and state["epoch"] >= 1

    r = subprocess.run(
        _torchrun(tmp_path / "logs-resume", "train", "--resume", "sig", "--epochs", state["epoch"] + 1),
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    ranks = _rank_stderr(tmp_path / "logs-resume")
    assert r.returncode == 0, ranks[0] + r.stderr[-3000:]
    assert ranks[1] == "" and ranks[0].count("model saved to") == 1
    assert [h["epoch"] for h in load_checkpoint(last)["train_state"]["history"]] == list(range(1, state["epoch"] + 2))


@pytest.mark.slow
def test_sigint_reaching_one_rank_stops_every_rank_with_exit_130(tmp_path):
    if not Path(f"/proc/{os.getpid()}/task").is_dir():
        pytest.skip("finds the worker processes through /proc")
    proc, home, logs, last = _start_until_first_epoch(tmp_path, "one")
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    rank1 = next(int(pid) for pid in children if b"LOCAL_RANK=1\0" in Path(f"/proc/{pid}/environ").read_bytes())
    os.kill(rank1, signal.SIGINT)  # rank 0 learns of it only through the per-step all-reduce
    _, err = proc.communicate(timeout=120)
    # torchrun's own report lists each failed worker with its exit status.
    assert err.count("exitcode  : 130") == 2, err[-3000:]
    ranks = _rank_stderr(logs)
    assert ranks[1] == "" and "train --resume one" in ranks[0]
    assert load_checkpoint(last)["train_state"]["epoch"] >= 1
