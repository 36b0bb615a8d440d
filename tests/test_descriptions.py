"""Tests for skinfood_cli.descriptions: bundled data, name resolution, overrides, errors."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from skinfood_cli import descriptions as desc
from skinfood_cli.errors import DescriptionsError, UsageError

DERMNET_CLASSES = [
    "Acne and Rosacea Photos",
    "Actinic Keratosis Basal Cell Carcinoma and other Malignant Lesions",
    "Atopic Dermatitis Photos",
    "Bullous Disease Photos",
    "Cellulitis Impetigo and other Bacterial Infections",
    "Eczema Photos",
    "Exanthems and Drug Eruptions",
    "Hair Loss Photos Alopecia and other Hair Diseases",
    "Herpes HPV and other STDs Photos",
    "Light Diseases and Disorders of Pigmentation",
    "Lupus and other Connective Tissue diseases",
    "Melanoma Skin Cancer Nevi and Moles",
    "Nail Fungus and other Nail Disease",
    "Poison Ivy Photos and other Contact Dermatitis",
    "Psoriasis pictures Lichen Planus and related diseases",
    "Scabies Lyme Disease and other Infestations and Bites",
    "Seborrheic Keratoses and other Benign Tumors",
    "Systemic Disease",
    "Tinea Ringworm Candidiasis and other Fungal Infections",
    "Urticaria Hives",
    "Vascular Tumors",
    "Vasculitis Photos",
    "Warts Molluscum and other Viral Infections",
]
STUDY_CONDITIONS = [
    "acne", "rosacea", "psoriasis", "eczema", "atopic_dermatitis", "vitiligo", "folliculitis", "lichen_planus",
]
HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    """Points the user config dir at an empty temp dir so a real user file never leaks in."""
    config = tmp_path / "config"
    config.mkdir()
    monkeypatch.setenv("SKINFOOD_CONFIG_DIR", str(config))
    return config


@pytest.fixture(scope="module")
def book():
    return desc.load_descriptions(include_user=False)


def make_entry(key: str, name: str = "Test rash", **changes) -> dict:
    """A complete, valid entry; `changes` replace top-level fields."""
    block = {
        "name": name,
        "summary": "A test summary.",
        "signs": ["Red", "Itchy"],
        "look_alikes": ["Eczema"],
        "self_care": ["Moisturise"],
        "see_a_doctor": "If it spreads.",
    }
    entry = {
        "key": key,
        "aliases": [],
        "urgency": "routine",
        "links": ["https://example.org/rash"],
        "en": copy.deepcopy(block),
        "ko": {**copy.deepcopy(block), "name": f"{name} 발진", "summary": "시험용 설명입니다."},
    }
    entry.update(changes)
    return entry


def write_file(path: Path, entries: list) -> Path:
    path.write_text(yaml.safe_dump({"schema_version": 1, "diseases": entries}, allow_unicode=True),
                    encoding="utf-8")
    return path


# --------------------------------------------------------------------------- bundled data

@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("name", DERMNET_CLASSES + STUDY_CONDITIONS)
def test_every_class_and_study_condition_has_a_full_description(book, name, lang):
    d = book.get(name, lang)
    assert d is not None, f"{name!r} does not resolve"
    assert d.lang == lang
    for field in ("name", "summary", "see_a_doctor"):
        assert getattr(d, field).strip()
    for field in ("signs", "look_alikes", "self_care", "links"):
        values = getattr(d, field)
        assert values and all(v.strip() for v in values)
    if lang == "ko":
        for text in (d.name, d.summary, d.see_a_doctor, *d.signs, *d.self_care):
            assert HANGUL.search(text), f"{d.key}: no Hangul in {text!r}"


def test_dermnet_folder_names_and_study_keys_map_to_distinct_entries(book):
    class_keys = {book.resolve_key(n) for n in DERMNET_CLASSES}
    assert len(class_keys) == 23 and all(k.startswith("dermnet_") for k in class_keys)
    assert [book.resolve_key(k) for k in STUDY_CONDITIONS] == STUDY_CONDITIONS
    assert len(book.keys()) == len(set(book.keys())) == 31


def test_bundled_entries_stay_within_the_schema_limits(book):
    for key in book.keys():
        for lang in desc.LANGUAGES:
            d = book.get(key, lang)
            assert 2 <= len(d.signs) <= 5, key
            assert 1 <= len(d.look_alikes) <= 4, key
            assert 1 <= len(d.self_care) <= 4, key
            assert 1 <= len(d.links) <= 3 and all(u.startswith("https://") for u in d.links), key
            assert d.urgency in desc.URGENCIES


def test_bundled_file_is_found_from_a_source_checkout():
    path = desc.bundled_path()
    assert path.is_file() and path.name == "diseases.yaml"
    assert desc.load_descriptions(include_user=False).sources() == [path]


def test_bundled_file_is_found_in_an_installed_package(tmp_path, monkeypatch):
    import importlib.resources

    installed = tmp_path / "site-packages" / "skinfood_cli"
    (installed / "descriptions").mkdir(parents=True)
    data = installed / "descriptions" / "diseases.yaml"
    data.write_bytes(desc.bundled_path().read_bytes())
    monkeypatch.setattr(importlib.resources, "files", lambda package: installed)
    assert desc.bundled_path() == data
    data.unlink()
    monkeypatch.setattr(desc, "__file__", str(tmp_path / "elsewhere" / "skinfood_cli" / "descriptions.py"))
    with pytest.raises(DescriptionsError, match="bundled descriptions file not found"):
        desc.bundled_path()


def test_to_dict_is_plain_json(book):
    data = book.get("acne", "ko").to_dict()
    assert isinstance(data["signs"], list) and data["key"] == "acne"
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data


# --------------------------------------------------------------------------- resolution

@pytest.mark.parametrize("query, key", [
    ("ACNE", "acne"),
    ("atopic-dermatitis", "atopic_dermatitis"),
    ("Atopic Dermatitis", "atopic_dermatitis"),
    ("Eczema photos", "dermnet_eczema"),
    ("eczema", "eczema"),
    ("eczema pictures", "eczema"),  # stop words dropped only when nothing matched as typed
    ("  urticaria_HIVES ", "dermnet_urticaria"),
    ("melanoma skin-cancer, nevi and moles", "dermnet_melanoma_nevi_moles"),
    ("Vasculitis", "dermnet_vasculitis"),
    ("dermnet_eczema", "dermnet_eczema"),
    ("아토피 피부염", "atopic_dermatitis"),
])
def test_case_space_and_punctuation_variants_resolve(book, query, key):
    assert book.resolve_key(query) == key
    assert book.get(query).key == key


@pytest.mark.parametrize("query", ["definitely not a disease", "", "!!!", "photos"])
def test_unknown_names_return_none(book, query):
    assert book.resolve_key(query) is None
    assert book.get(query, "ko") is None


def test_normalize_name_keeps_korean_and_drops_punctuation():
    assert desc.normalize_name("Atopic-Dermatitis PHOTOS") == "atopicdermatitisphotos"
    assert desc.normalize_name("Atopic-Dermatitis PHOTOS", loose=True) == "atopicdermatitis"
    assert desc.normalize_name("아토피 피부염!") == "아토피피부염"


def test_unknown_language_is_a_usage_error(book):
    with pytest.raises(UsageError, match="unknown language 'fr': choose en or ko"):
        book.get("acne", "fr")


# --------------------------------------------------------------------------- urgency

@pytest.mark.parametrize("name", [
    "Melanoma Skin Cancer Nevi and Moles",
    "Cellulitis Impetigo and other Bacterial Infections",
    "Actinic Keratosis Basal Cell Carcinoma and other Malignant Lesions",
])
def test_cancer_and_infection_classes_are_urgent(book, name):
    assert book.get(name).urgency == "urgent"


@pytest.mark.parametrize("name", [
    "Systemic Disease", "Lupus and other Connective Tissue diseases", "Vasculitis Photos",
    "Bullous Disease Photos", "Exanthems and Drug Eruptions", "Herpes HPV and other STDs Photos",
])
def test_serious_classes_are_not_routine(book, name):
    assert book.get(name).urgency != "routine"


# --------------------------------------------------------------------------- overrides

def test_user_file_replaces_an_entry_and_adds_one(isolated_config):
    user = write_file(isolated_config / "descriptions.yaml", [
        make_entry("acne", name="My acne", aliases=["spots"]),
        make_entry("heat_rash", name="Heat rash", aliases=["prickly heat", "땀띠"]),
    ])
    assert desc.user_override_path() == user
    book = desc.load_descriptions()
    assert book.sources() == [desc.bundled_path(), user]
    assert book.get("acne").name == "My acne"
    assert book.get("spots").key == "acne"
    assert book.resolve_key("acne vulgaris") is None  # whole-entry replacement drops old aliases
    assert book.get("Prickly-Heat", "ko").name == "Heat rash 발진"
    assert book.get("땀띠").key == "heat_rash"
    keys = book.keys()
    assert keys[-1] == "heat_rash" and keys.index("acne") < keys.index("rosacea")


def test_extra_file_is_loaded_last(isolated_config, tmp_path):
    write_file(isolated_config / "descriptions.yaml", [make_entry("acne", name="User acne")])
    extra = write_file(tmp_path / "extra.yaml", [
        make_entry("acne", name="Extra acne"), make_entry("new_one", name="New one", urgency="soon"),
    ])
    book = desc.load_descriptions(extra)
    assert book.sources()[-1] == extra and len(book.sources()) == 3
    assert book.get("acne").name == "Extra acne"
    assert book.get("new one").urgency == "soon"
    assert desc.load_descriptions(extra, include_user=False).sources() == [desc.bundled_path(), extra]


def test_user_file_is_ignored_when_asked(isolated_config):
    write_file(isolated_config / "descriptions.yaml", [make_entry("acne", name="User acne")])
    assert desc.load_descriptions(include_user=False).get("acne").name == "Acne"


def test_edited_file_is_reread(tmp_path):
    extra = write_file(tmp_path / "extra.yaml", [make_entry("acne", name="First")])
    assert desc.load_descriptions(extra).get("acne").name == "First"
    write_file(extra, [make_entry("acne", name="Second, longer name")])
    assert desc.load_descriptions(extra).get("acne").name == "Second, longer name"


def test_missing_extra_file_is_reported(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(DescriptionsError) as info:
        desc.load_descriptions(missing)
    assert str(info.value) == f"descriptions file not found: {missing}"


def test_user_override_path_uses_platform_dir_without_env(monkeypatch):
    monkeypatch.delenv("SKINFOOD_CONFIG_DIR")
    path = desc.user_override_path()
    assert path.name == "descriptions.yaml" and "skinfood" in str(path)


# --------------------------------------------------------------------------- schema errors

def _broken(kind: str) -> tuple[object, str, str]:
    """(file content, expected entry label, expected field) for one kind of mistake."""
    good = make_entry("rash_a")
    if kind == "missing field":
        del good["en"]["summary"]
        return [good], "entry 'rash_a'", "field 'en.summary': missing field"
    if kind == "wrong type":
        good["ko"]["signs"] = "빨개요"
        return [good], "entry 'rash_a'", "field 'ko.signs': expected a list of strings"
    if kind == "not a string":
        good["en"]["name"] = 42
        return [good], "entry 'rash_a'", "field 'en.name': expected a non-empty string"
    if kind == "unknown urgency":
        good["urgency"] = "whenever"
        return [good], "entry 'rash_a'", "field 'urgency': unknown urgency 'whenever'"
    if kind == "unknown field":
        good["colour"] = "red"
        return [good], "entry 'rash_a'", "field 'colour': unknown field"
    if kind == "missing language":
        del good["ko"]
        return [good], "entry 'rash_a'", "field 'ko': missing field"
    if kind == "duplicated alias":
        return ([make_entry("rash_a", aliases=["Red Rash"]), make_entry("rash_b", aliases=["red-rash"])],
                "entry 'rash_b'", "field 'aliases': 'red-rash' collides with entry 'rash_a'")
    if kind == "alias equals a key":
        return ([make_entry("rash_a"), make_entry("rash_b", aliases=["Rash A"])],
                "entry 'rash_b'", "field 'aliases': 'Rash A' collides with entry 'rash_a'")
    if kind == "loose clash":
        return ([make_entry("rash_a", aliases=["Red Photos"]), make_entry("rash_b", aliases=["red pictures"])],
                "entry 'rash_b'", "collides with entry 'rash_a' once words like 'photos' are ignored")
    if kind == "duplicated key":
        return [make_entry("rash_a"), make_entry("rash_a")], "entry 'rash_a'", "field 'key': duplicate key"
    if kind == "bad key":
        return [make_entry("Rash A")], "entry 'Rash A'", "field 'key': 'Rash A' is not lowercase snake_case"
    if kind == "no key":
        del good["key"]
        return [good], "entry #1", "field 'key': missing field"
    raise AssertionError(kind)


ERROR_KINDS = ["missing field", "wrong type", "not a string", "unknown urgency", "unknown field",
               "missing language", "duplicated alias", "alias equals a key", "loose clash",
               "duplicated key", "bad key", "no key"]


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_schema_errors_name_file_entry_and_field_on_one_line(tmp_path, kind):
    entries, label, field = _broken(kind)
    bad = write_file(tmp_path / "bad.yaml", entries)
    with pytest.raises(DescriptionsError) as info:
        desc.load_descriptions(bad)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"descriptions file {bad}: {label} ")
    assert field in message


def test_yaml_syntax_error_reports_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\ndiseases:\n  - key: acne\n    aliases: [unclosed\n    urgency: routine\n",
                   encoding="utf-8")
    with pytest.raises(DescriptionsError) as info:
        desc.load_descriptions(bad)
    message = str(info.value)
    assert "\n" not in message
    assert re.match(rf"descriptions file {re.escape(str(bad))}: YAML syntax error at line \d+: \S", message)


@pytest.mark.parametrize("content, expected", [
    ("- just\n- a list\n", "expected a mapping with a 'diseases' list"),
    ("schema_version: 1\n", "expected a mapping with a 'diseases' list"),
    ("", "expected a mapping with a 'diseases' list"),
    ("schema_version: 2\ndiseases: []\n", "field 'schema_version': unsupported version 2"),
    ("diseases: []\nextra: 1\n", "field 'extra': unknown field"),
])
def test_bad_top_level_is_reported(tmp_path, content, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(DescriptionsError, match=re.escape(f"descriptions file {bad}: {expected}")):
        desc.load_descriptions(bad)


def test_broken_user_file_is_reported_too(isolated_config):
    user = write_file(isolated_config / "descriptions.yaml", [make_entry("acne", urgency="asap")])
    with pytest.raises(DescriptionsError, match=re.escape(f"descriptions file {user}: entry 'acne'")):
        desc.load_descriptions()


# --------------------------------------------------------------------------- language

LOCALE_VARS = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


@pytest.mark.parametrize("env, expected", [
    ({"LANG": "ko_KR.UTF-8"}, "ko"),
    ({"LANG": "C"}, "en"),
    ({}, "en"),
    ({"LANG": "ko_KR.UTF-8", "LC_ALL": "en_US.UTF-8"}, "en"),
    ({"LANG": "en_US.UTF-8", "LANGUAGE": "ko:en"}, "ko"),
])
def test_default_language_follows_the_locale(monkeypatch, env, expected):
    for var in LOCALE_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert desc.default_language() == expected


def test_validate_language():
    assert desc.validate_language("ko") == "ko"
    assert desc.validate_language("EN") == "en"
    with pytest.raises(UsageError) as info:
        desc.validate_language("fr")
    assert str(info.value) == "unknown language 'fr': choose en or ko"
