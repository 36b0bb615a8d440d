"""`skinfood check` and what it rests on: hashes, the facts cache, the skin-tone estimate.

Generated photos only: smooth random colour fields (structure at the scale a
difference hash sees), saved as JPEG, and copies of them made the ways atlas
photos repeat (byte copy, resize, low-quality re-encode, mirror).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from skinfood_cli.data.check import DEFAULT_THRESHOLD, check_dataset
from skinfood_cli.data.hash_cache import collect_facts
from skinfood_cli.data.hashing import close_pairs, pack_hashes, photo_facts
from skinfood_cli.data.skin_tone import estimate_ita, ita_group, lab_to_srgb

CLASSES = ("acne", "psoriasis")


def field_photo(seed: int, size=(160, 120)) -> Image.Image:
    """A smooth random colour field: no two seeds look alike to dHash (55+ bits apart)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)


def make_split_set(root: Path, per_class: int = 6) -> Path:
    seed = 0
    for split, n in (("train", per_class), ("test", per_class // 2)):
        for cls in CLASSES:
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed += 1
                field_photo(seed).save(folder / f"{i:03d}.jpg", quality=90)
    return root


@pytest.fixture
def clean_set(tmp_path) -> Path:
    return make_split_set(tmp_path / "data")


def plant_leaks(root: Path) -> dict[str, str]:
    """Copies of training photos into test, one per way; returns test name -> kind."""
    train = root / "train" / "acne"
    test = root / "test" / "acne"
    shutil.copy(train / "000.jpg", test / "exact.jpg")
    Image.open(train / "001.jpg").resize((320, 240)).save(test / "resized.jpg", quality=90)
    Image.open(train / "002.jpg").save(test / "low_quality.jpg", quality=30)
    ImageOps.mirror(Image.open(train / "003.jpg")).save(test / "mirrored.jpg", quality=90)
    return {"exact.jpg": "exact", "resized.jpg": "near", "low_quality.jpg": "near", "mirrored.jpg": "mirrored"}


# --- hashes and pairs ------------------------------------------------------------------


def test_every_planted_copy_is_found_across_splits_and_nothing_else(clean_set):
    planted = plant_leaks(clean_set)
    report = check_dataset(clean_set)
    leaks = report.leaks
    found = {Path(p.b).name: p for p in leaks}
    assert set(found) == set(planted), [(p.a, p.b, p.distance) for p in leaks]
    assert all(p.split_a == "train" and p.split_b == "test" for p in leaks)
    assert found["exact.jpg"].exact and found["exact.jpg"].distance == 0
    assert found["mirrored.jpg"].mirrored
    assert not found["resized.jpg"].exact and found["resized.jpg"].distance <= DEFAULT_THRESHOLD
    assert report.to_dict()["cross_split_photos"] == {"test": 4, "train": 4}


def test_distinct_generated_photos_are_not_copies(clean_set):
    report = check_dataset(clean_set)
    assert report.pairs == []
    assert report.to_dict()["clean"] is True


def test_a_copy_inside_train_is_a_within_split_pair(clean_set):
    shutil.copy(clean_set / "train" / "acne" / "000.jpg", clean_set / "train" / "psoriasis" / "dup.jpg")
    report = check_dataset(clean_set)
    assert report.leaks == []
    [pair] = report.pairs
    assert pair.split_a == pair.split_b == "train" and pair.exact and pair.class_a != pair.class_b


def test_blocked_pair_search_matches_brute_force():
    rng = np.random.default_rng(0)
    hexes = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(150)]
    hexes[140] = hexes[3]  # an exact pair across a block boundary
    packed = pack_hashes(hexes)
    bits = np.unpackbits(np.frombuffer(b"".join(bytes.fromhex(h) for h in hexes), np.uint8).reshape(150, 32), axis=1)
    brute = {(i, j) for i in range(150) for j in range(i + 1, 150) if int((bits[i] != bits[j]).sum()) <= 110}
    assert {(i, j) for i, j, _, _ in close_pairs(packed, None, 110, block=16)} == brute
    assert (3, 140) in brute


# --- the problems besides copies ---------------------------------------------------------


def test_unreadable_tiny_and_grey_photos_and_class_counts(clean_set):
    (clean_set / "train" / "acne" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (clean_set / "train" / "acne" / "notes.txt").write_text("hello")
    field_photo(900, size=(40, 30)).save(clean_set / "train" / "psoriasis" / "tiny.jpg")
    field_photo(901).convert("L").convert("RGB").save(clean_set / "test" / "psoriasis" / "grey.jpg")
    d = check_dataset(clean_set).to_dict()
    reasons = {Path(u["path"]).name: u["reason"] for u in d["unreadable"]}
    assert set(reasons) == {"broken.jpg", "notes.txt"}
    assert [Path(t["path"]).name for t in d["tiny"]] == ["tiny.jpg"]
    assert [Path(p).name for p in d["grayscale"]] == ["grey.jpg"]
    assert d["class_counts"] == {"train": {"acne": 6, "psoriasis": 7}, "test": {"acne": 3, "psoriasis": 4}}
    assert d["imbalance_ratio"] == pytest.approx(7 / 6, abs=1e-3)
    assert d["sizes"]["short_side"]["min"] == 30
    assert sum(d["skin_tone"]["train"].values()) == 13  # every readable photo is in one group


# --- the cache --------------------------------------------------------------------------------


def test_cache_answers_a_second_run_and_recomputes_a_changed_file(clean_set):
    paths = sorted(str(p) for p in clean_set.rglob("*.jpg"))
    first, stats = collect_facts(paths)
    assert stats == {"cached": 0, "computed": len(paths)}
    again, stats = collect_facts(paths)
    assert stats == {"cached": len(paths), "computed": 0}
    assert [f.dhash for f in again] == [f.dhash for f in first]

    changed = Path(paths[0])
    field_photo(777).save(changed, quality=90)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 1_000_000))  # a new mtime even on coarse clocks
    after, stats = collect_facts(paths)
    assert stats == {"cached": len(paths) - 1, "computed": 1}
    assert after[0].sha256 != first[0].sha256 and after[0].dhash != first[0].dhash


def test_cache_lives_in_the_data_home(clean_set, tmp_path):
    collect_facts([str(next(clean_set.rglob("*.jpg")))])
    assert (tmp_path / "home" / "cache" / "photo-facts.sqlite3").is_file()


def test_a_bad_file_is_a_fact_not_an_exception(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    facts = photo_facts(bad)
    assert facts.error and facts.sha256 and not facts.dhash


# --- skin tone -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "L, b, group",
    [
        (78, 10, "very light"),  # ITA 70
        (64, 14, "light"),  # 45
        (58, 13, "intermediate"),  # 31.6
        (54, 16, "tan"),  # 14
        (44, 18, "brown"),  # -18
        (30, 14, "dark"),  # -55
    ],
)
def test_patches_of_known_lab_colour_land_in_their_group(L, b, group):
    rng = np.random.default_rng(0)
    lab = np.zeros((48, 64, 3)) + [L, 9.0, b]
    lab[..., 0] += rng.normal(0, 0.7, lab.shape[:2])  # a little texture
    rgb = np.clip(lab_to_srgb(lab) * 255 + 0.5, 0, 255).astype(np.uint8)
    ita = estimate_ita(rgb)
    assert ita is not None and ita_group(ita) == group, ita


def test_a_saturated_lesion_does_not_move_the_skin_tone():
    skin = np.clip(lab_to_srgb(np.zeros((60, 80, 3)) + [64, 9.0, 14]) * 255 + 0.5, 0, 255).astype(np.uint8)
    with_lesion = skin.copy()
    with_lesion[20:40, 30:50] = np.clip(lab_to_srgb(np.array([45, 45, 30])) * 255 + 0.5, 0, 255).astype(np.uint8)
    assert ita_group(estimate_ita(with_lesion)) == ita_group(estimate_ita(skin)) == "light"


def test_no_skin_means_unknown_not_a_guess():
    blue = np.zeros((40, 40, 3), np.uint8) + np.array([30, 60, 200], np.uint8)
    assert estimate_ita(blue) is None and ita_group(None) == "unknown"


# --- the command ---------------------------------------------------------------------------


def test_check_json_shape_and_exit_1_on_leaks(cli, clean_set):
    plant_leaks(clean_set)
    result = cli("check", "--data", clean_set, "--format", "json")
    assert result.exit_code == 1, result.output
    d = json.loads(result.stdout)
    assert d["clean"] is False and d["cross_split_pairs"] == 4 == len([p for p in d["pairs"] if p["cross_split"]])
    for key in (
        "data",
        "layout",
        "threshold",
        "photos",
        "class_counts",
        "imbalance_ratio",
        "pairs",
        "unreadable",
        "tiny",
        "grayscale",
        "sizes",
        "skin_tone",
        "skin_tone_note",
        "cache",
        "nearest_train_distance",
    ):
        assert key in d, key
    pair = d["pairs"][0]
    assert set(pair) >= {"a", "b", "split_a", "split_b", "class_a", "class_b", "distance", "exact", "mirrored"}
    assert "not the person's Fitzpatrick type" in d["skin_tone_note"]


def test_check_exits_0_on_a_clean_set_and_prints_a_report(cli, clean_set):
    result = cli("check", "--data", clean_set)
    assert result.exit_code == 0, result.output
    assert "no copies across splits" in result.stdout
    assert "photos per class" in result.stdout and "skin tone" in result.stdout


def test_threshold_zero_keeps_only_identical_hashes(cli, clean_set):
    plant_leaks(clean_set)
    d = json.loads(cli("check", "--data", clean_set, "--format", "json", "--threshold", "0").stdout)
    assert {Path(p["b"]).name for p in d["pairs"]} >= {"exact.jpg"}
    assert all(p["distance"] == 0 for p in d["pairs"])


def test_check_on_a_missing_folder_is_one_line_and_exit_2(cli, tmp_path):
    result = cli("check", "--data", tmp_path / "nope")
    assert result.exit_code == 2
    assert "data folder not found" in result.stderr and "Traceback" not in result.stderr


def test_class_folders_layout_has_no_cross_split_pairs(cli, tmp_path):
    root = tmp_path / "flat"
    for k, cls in enumerate(CLASSES):
        (root / cls).mkdir(parents=True)
        field_photo(k).save(root / cls / "a.jpg")
    shutil.copy(root / "acne" / "a.jpg", root / "psoriasis" / "b.jpg")
    result = cli("check", "--data", root, "--format", "json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["layout"] == "class-folders" and d["within_split_pairs"] == 1 and d["cross_split_pairs"] == 0
