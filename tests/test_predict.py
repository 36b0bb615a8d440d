"""`skinfood predict`: records people and shell scripts can rely on."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from skinfood_cli.prediction import expand_inputs, parse_shard

FIELDS = {"path", "label", "disease_name", "confidence", "uncertain", "top_k", "description", "error"}
pytestmark = pytest.mark.slow  # every test here uses the session's trained model


@pytest.fixture
def photos(dataset, tmp_path) -> Path:
    """A folder of 6 test photos (2 a class) in a nested layout, plus nothing else."""
    folder = tmp_path / "photos"
    for cls in ("acne", "psoriasis", "vitiligo"):
        for src in sorted((dataset / "test" / cls).glob("*.jpg"))[:2]:
            target = folder / ("nested" if cls == "vitiligo" else "") / src.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target)
    return folder


def _check_record(rec: dict, classes=("acne", "psoriasis", "vitiligo")):
    assert set(rec) >= FIELDS
    if rec["error"] is None:
        assert rec["label"] in classes
        assert 0.0 <= rec["confidence"] <= 1.0
        assert isinstance(rec["uncertain"], bool)
        assert rec["top_k"][0]["label"] == rec["label"]
        assert {"label", "disease_name", "probability"} == set(rec["top_k"][0])
        probs = [t["probability"] for t in rec["top_k"]]
        assert probs == sorted(probs, reverse=True)
        assert rec["description"]


def test_json_is_one_array_of_full_records(cli, model_path, photos):
    r = cli("predict", photos, "--model", model_path, "--format", "json")
    assert r.exit_code == 0, r.stderr
    records = json.loads(r.stdout)
    assert len(records) == 6
    for rec in records:
        _check_record(rec)
        assert rec["error"] is None and len(rec["top_k"]) == 3
    right = sum(Path(rec["path"]).name.startswith(rec["label"]) for rec in records)
    assert right >= 5, records


def test_jsonl_csv_tsv_carry_the_same_answers(cli, model_path, photos):
    by_format = {}
    r = cli("predict", photos, "--model", model_path, "--format", "jsonl")
    assert r.exit_code == 0, r.stderr
    by_format["jsonl"] = [json.loads(line) for line in r.stdout.splitlines()]
    for fmt, delim in (("csv", ","), ("tsv", "\t")):
        r = cli("predict", photos, "--model", model_path, "--format", fmt)
        assert r.exit_code == 0, r.stderr
        rows = list(csv.DictReader(io.StringIO(r.stdout), delimiter=delim))
        assert set(rows[0]) >= FIELDS
        by_format[fmt] = rows
    for a, b, c in zip(by_format["jsonl"], by_format["csv"], by_format["tsv"]):
        assert a["path"] == b["path"] == c["path"]
        assert a["label"] == b["label"] == c["label"]
        assert float(b["confidence"]) == pytest.approx(a["confidence"])
        assert b["top_k"].split("|")[0].split(":")[0] == a["label"]


def test_output_file_and_nothing_else_on_stdout(cli, model_path, photos, tmp_path):
    out = tmp_path / "out.csv"
    r = cli("predict", photos, "--model", model_path, "--format", "csv", "--output", out)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    assert len(list(csv.DictReader(out.open()))) == 6


def test_broken_files_give_error_records_and_exit_1(cli, model_path, photos, tmp_path):
    (photos / "broken.jpg").write_text("this is text")
    (photos / "empty.png").write_bytes(b"")
    r = cli("predict", photos, tmp_path / "missing.jpg", "--model", model_path, "--format", "json")
    assert r.exit_code == 1
    records = json.loads(r.stdout)
    assert len(records) == 9
    errors = {Path(rec["path"]).name: rec["error"] for rec in records if rec["error"]}
    assert set(errors) == {"broken.jpg", "empty.png", "missing.jpg"}
    assert errors["missing.jpg"] == "file not found"
    for rec in records:
        _check_record(rec)
    assert "3 of 9" in r.stderr and "Traceback" not in r.stderr


def test_records_follow_input_order_and_folders_are_sorted(cli, model_path, photos):
    files = sorted(str(p) for p in photos.rglob("*.jpg"))
    single = files[3]
    r = cli("predict", single, photos, files[0], "--model", model_path, "--format", "jsonl")
    paths = [json.loads(line)["path"] for line in r.stdout.splitlines()]
    assert paths == [single, *files, files[0]]


def test_paths_from_stdin(cli, model_path, photos):
    files = sorted(str(p) for p in photos.rglob("*.jpg"))
    r = cli("predict", "-", "--model", model_path, "--format", "jsonl", input="\n".join(files[:3]) + "\n")
    assert r.exit_code == 0, r.stderr
    assert [json.loads(line)["path"] for line in r.stdout.splitlines()] == files[:3]


def test_no_recursive_and_glob(cli, model_path, photos):
    r = cli("predict", photos, "--no-recursive", "--model", model_path, "--format", "jsonl")
    assert len(r.stdout.splitlines()) == 4
    r = cli("predict", str(photos / "acne_*.jpg"), "--model", model_path, "--format", "jsonl")
    assert [Path(json.loads(x)["path"]).name[:4] for x in r.stdout.splitlines()] == ["acne", "acne"]
    r = cli("predict", str(photos / "nothing_*.jpg"), "--model", model_path, "--format", "json")
    assert r.exit_code == 1 and json.loads(r.stdout)[0]["error"] == "no files match this pattern"


def test_default_model_is_used_without_model_option(cli, installed_run, photos):
    r = cli("predict", photos, "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert len(json.loads(r.stdout)) == 6


def test_human_output_for_one_photo_and_for_a_folder(cli, model_path, photos):
    one = sorted(photos.glob("acne_*.jpg"))[0]
    r = cli("predict", one, "--model", model_path)
    assert r.exit_code == 0, r.stderr
    assert "Acne" in r.stdout and "%" in r.stdout and "Not a diagnosis" in r.stdout
    assert "what to do" in r.stdout
    r = cli("predict", photos, "--model", model_path, "--lang", "ko")
    assert "6 image(s): 6 classified" in r.stdout
    assert "진단이 아닙니다" in r.stdout and "여드름" in r.stdout


def test_threshold_marks_uncertain_answers(cli, model_path, photos):
    r = cli("predict", photos, "--model", model_path, "--format", "json", "--threshold", "1.0")
    assert all(rec["uncertain"] for rec in json.loads(r.stdout))
    r = cli("predict", photos, "--model", model_path, "--format", "json", "--threshold", "0")
    assert not any(rec["uncertain"] for rec in json.loads(r.stdout))


def test_top_k_is_clamped_to_the_class_count(cli, model_path, photos):
    r = cli("predict", photos, "--model", model_path, "--format", "json", "--top-k", "10")
    assert all(len(rec["top_k"]) == 3 for rec in json.loads(r.stdout))


def test_images_in_any_mode_are_classified(cli, model_path, dataset, tmp_path):
    src = Image.open(sorted((dataset / "test" / "acne").glob("*.jpg"))[0])
    folder = tmp_path / "modes"
    folder.mkdir()
    src.convert("L").save(folder / "gray.png")
    src.convert("CMYK").save(folder / "cmyk.jpg")
    src.convert("RGBA").save(folder / "rgba.png")
    src.convert("P").save(folder / "palette.gif")
    src.save(folder / "upper.JPG")
    src.save(folder / "photo.webp")
    r = cli("predict", folder, "--model", model_path, "--format", "json")
    assert r.exit_code == 0, r.stderr
    records = json.loads(r.stdout)
    assert len(records) == 6 and all(rec["error"] is None for rec in records)


def test_class_without_description_gets_the_study_default(cli, model_path, photos, tmp_path):
    override = tmp_path / "d.yaml"
    override.write_text("schema_version: 1\ndiseases: []\n")
    r = cli("predict", photos, "--model", model_path, "--format", "json")
    assert all(rec["description"] != "No description available." for rec in json.loads(r.stdout))


def test_shards_cover_every_input_exactly_once(photos):
    everything = [i.path for i in expand_inputs([str(photos)])]
    shards = [[i.path for i in expand_inputs([str(photos)], shard=(k, 3))] for k in range(3)]
    assert sorted(sum(shards, [])) == sorted(everything)
    assert len(set(sum(shards, []))) == len(everything)
    assert parse_shard("1/3") == (1, 3)


def test_bad_descriptions_file_is_a_usage_error(cli, model_path, photos, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("diseases: [\n")
    r = cli("predict", photos, "--model", model_path, "--descriptions", bad)
    assert r.exit_code == 2
    assert str(bad) in r.stderr and r.stderr.count("\n") == 1
