"""Tests for skinfood_cli.descriptions: bundled data, red flags, name resolution, overrides, errors."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pytest
import yaml

from skinfood_cli import descriptions as desc
from skinfood_cli import red_flags as rf
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
    "acne",
    "rosacea",
    "psoriasis",
    "eczema",
    "atopic_dermatitis",
    "vitiligo",
    "folliculitis",
    "lichen_planus",
]
# The folder names of DermNet NZ's own photos (../shared/dermnet-dev): a model trained on
# them names these, and each needs its own description, not "No description available".
DERMNET_NZ_TOPICS = [
    "actinic_keratosis",
    "atopic_dermatitis",
    "basal_cell_carcinoma",
    "hidradenitis_suppurativa",
    "melanocytic_naevus",
    "prurigo",
    "purpura",
    "telangiectasia",
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


def make_entry_v2(key: str, en_flags=(("routine", False),), ko_flags=None, urgency: str = "routine") -> dict:
    """A valid schema-2 entry; flags are (when, escalation) pairs, Korean copying English by default."""
    entry = make_entry(key, urgency=urgency)
    for lang, flags in (("en", en_flags), ("ko", en_flags if ko_flags is None else ko_flags)):
        del entry[lang]["see_a_doctor"]
        entry[lang]["red_flags"] = [
            {"when": when, "sign": f"sign {i} ({lang})", **({"escalation": True} if esc else {})}
            for i, (when, esc) in enumerate(flags, start=1)
        ]
    return entry


def write_file(path: Path, entries: list, version: int = 1) -> Path:
    path.write_text(
        yaml.safe_dump({"schema_version": version, "diseases": entries}, allow_unicode=True), encoding="utf-8"
    )
    return path


# --------------------------------------------------------------------------- bundled data


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("name", DERMNET_CLASSES + STUDY_CONDITIONS + DERMNET_NZ_TOPICS)
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
    assert [book.resolve_key(k) for k in DERMNET_NZ_TOPICS] == DERMNET_NZ_TOPICS
    assert len(book.keys()) == len(set(book.keys())) == 38


def test_bundled_entries_stay_within_the_schema_limits(book):
    for key in book.keys():
        for lang in desc.LANGUAGES:
            d = book.get(key, lang)
            assert 2 <= len(d.signs) <= 5, key
            assert 1 <= len(d.look_alikes) <= 4, key
            assert 1 <= len(d.self_care) <= 4, key
            assert 1 <= len(d.links) <= 4 and all(u.startswith("https://") for u in d.links), key
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


@pytest.mark.parametrize(
    "query, key",
    [
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
    ],
)
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


@pytest.mark.parametrize(
    "name",
    [
        "Melanoma Skin Cancer Nevi and Moles",
        "Cellulitis Impetigo and other Bacterial Infections",
        "Actinic Keratosis Basal Cell Carcinoma and other Malignant Lesions",
    ],
)
def test_cancer_and_infection_classes_are_urgent(book, name):
    assert book.get(name).urgency == "urgent"


@pytest.mark.parametrize(
    "name",
    [
        "Systemic Disease",
        "Lupus and other Connective Tissue diseases",
        "Vasculitis Photos",
        "Bullous Disease Photos",
        "Exanthems and Drug Eruptions",
        "Herpes HPV and other STDs Photos",
    ],
)
def test_serious_classes_are_not_routine(book, name):
    assert book.get(name).urgency != "routine"


# --------------------------------------------------------------------------- overrides


def test_user_file_replaces_an_entry_and_adds_one(isolated_config):
    user = write_file(
        isolated_config / "descriptions.yaml",
        [
            make_entry("acne", name="My acne", aliases=["spots"]),
            make_entry("heat_rash", name="Heat rash", aliases=["prickly heat", "땀띠"]),
        ],
    )
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
    extra = write_file(
        tmp_path / "extra.yaml",
        [
            make_entry("acne", name="Extra acne"),
            make_entry("new_one", name="New one", urgency="soon"),
        ],
    )
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
        return (
            [make_entry("rash_a", aliases=["Red Rash"]), make_entry("rash_b", aliases=["red-rash"])],
            "entry 'rash_b'",
            "field 'aliases': 'red-rash' collides with entry 'rash_a'",
        )
    if kind == "alias equals a key":
        return (
            [make_entry("rash_a"), make_entry("rash_b", aliases=["Rash A"])],
            "entry 'rash_b'",
            "field 'aliases': 'Rash A' collides with entry 'rash_a'",
        )
    if kind == "loose clash":
        return (
            [make_entry("rash_a", aliases=["Red Photos"]), make_entry("rash_b", aliases=["red pictures"])],
            "entry 'rash_b'",
            "collides with entry 'rash_a' once words like 'photos' are ignored",
        )
    if kind == "duplicated key":
        return [make_entry("rash_a"), make_entry("rash_a")], "entry 'rash_a'", "field 'key': duplicate key"
    if kind == "bad key":
        return [make_entry("Rash A")], "entry 'Rash A'", "field 'key': 'Rash A' is not lowercase snake_case"
    if kind == "no key":
        del good["key"]
        return [good], "entry #1", "field 'key': missing field"
    raise AssertionError(kind)


ERROR_KINDS = [
    "missing field",
    "wrong type",
    "not a string",
    "unknown urgency",
    "unknown field",
    "missing language",
    "duplicated alias",
    "alias equals a key",
    "loose clash",
    "duplicated key",
    "bad key",
    "no key",
]


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
    bad.write_text(
        "schema_version: 1\ndiseases:\n  - key: acne\n    aliases: [unclosed\n    urgency: routine\n", encoding="utf-8"
    )
    with pytest.raises(DescriptionsError) as info:
        desc.load_descriptions(bad)
    message = str(info.value)
    assert "\n" not in message
    assert re.match(rf"descriptions file {re.escape(str(bad))}: YAML syntax error at line \d+: \S", message)


@pytest.mark.parametrize(
    "content, expected",
    [
        ("- just\n- a list\n", "expected a mapping with a 'diseases' list"),
        ("schema_version: 1\n", "expected a mapping with a 'diseases' list"),
        ("", "expected a mapping with a 'diseases' list"),
        ("schema_version: 3\ndiseases: []\n", "field 'schema_version': unsupported version 3"),
        ("diseases: []\nextra: 1\n", "field 'extra': unknown field"),
    ],
)
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


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"LANG": "ko_KR.UTF-8"}, "ko"),
        ({"LANG": "C"}, "en"),
        ({}, "en"),
        ({"LANG": "ko_KR.UTF-8", "LC_ALL": "en_US.UTF-8"}, "en"),
        ({"LANG": "en_US.UTF-8", "LANGUAGE": "ko:en"}, "ko"),
    ],
)
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


# --------------------------------------------------------------------------- red flags: every bundled entry


# Hosts the bundled links and sources may use, each with the shape of a working page address.
LINK_PATTERNS = {
    "dermnetnz.org": r"/topics/[a-z0-9]+(?:-[a-z0-9]+)*",
    "www.nhs.uk": r"/conditions/[a-z0-9]+(?:-[a-z0-9]+)*/",
    "medlineplus.gov": r"/[a-z]+\.html",
    "www.nice.org.uk": r"/guidance/(?:ng|cg)\d+",
    "www.aad.org": r"/public/[a-z0-9/-]+",
    "health.kdca.go.kr": r"/healthinfo/biz/health/gnrlzHealthInfo/gnrlzHealthInfo/gnrlzHealthInfo\w+\.do",
}


def _assert_link(url: str, where: str) -> None:
    match = re.fullmatch(r"https://([a-z0-9.-]+)(/\S*)", url)
    assert match, f"{where}: {url!r} is not an https URL"
    host, path = match.groups()
    assert host in LINK_PATTERNS, f"{where}: {url!r}: unexpected host"
    assert re.fullmatch(LINK_PATTERNS[host], path), f"{where}: {url!r} does not look like a {host} page"


def test_every_bundled_entry_has_red_flags_that_agree_in_both_languages(book):
    keys = book.keys()
    for key in keys:
        en, ko = book.get(key, "en"), book.get(key, "ko")
        assert en.red_flags and ko.red_flags, key
        assert [(f.when, f.escalation) for f in en.red_flags] == [(f.when, f.escalation) for f in ko.red_flags], key
        for flag in ko.red_flags:
            assert HANGUL.search(flag.sign), f"{key}: Korean red flag without Hangul: {flag.sign!r}"
        for lang, d in (("en", en), ("ko", ko)):
            assert d.see_a_doctor == rf.render_advice(d.red_flags, lang)
            for when in {f.when for f in d.red_flags}:  # the timing words reach the reader in each language
                assert rf.ADVICE_LEAD[lang][when] in d.see_a_doctor, (key, lang, when)


def test_every_bundled_badge_covers_its_red_flags(book):
    order = rf.URGENCY_ORDER.index
    keys = book.keys()
    for key in keys:
        d = book.get(key)
        for flag in d.red_flags:
            floor = order(rf.URGENCY_FLOOR[flag.when])
            assert (floor > order(d.urgency)) if flag.escalation else (floor <= order(d.urgency)), (key, flag)


def test_every_bundled_link_and_red_flag_source_is_an_https_page(book):
    keys = book.keys()
    for key in keys:
        d = book.get(key)
        assert len(set(d.links)) == len(d.links), key
        for url in d.links:
            _assert_link(url, key)
        for i, flag in enumerate(d.red_flags, start=1):
            assert flag.source, f"{key}: en red flag {i} names no source"
            _assert_link(flag.source, f"{key} red flag {i}")
        assert all(f.source is None for f in book.get(key, "ko").red_flags), key  # sources live on en


def _flags(book, key: str, lang: str, pattern: str) -> list:
    found = [f for f in book.get(key, lang).red_flags if re.search(pattern, f.sign)]
    assert found, f"{key} ({lang}): no red flag matching {pattern!r}"
    return found


@pytest.mark.parametrize("key", ["dermnet_eczema", "dermnet_atopic_dermatitis", "eczema", "atopic_dermatitis"])
def test_eczema_herpeticum_is_same_day_with_or_without_fever(book, key):
    (en,) = _flags(book, key, "en", "eczema herpeticum")
    (ko,) = _flags(book, key, "ko", "카포시수두모양발진")
    assert en.when == ko.when == "same_day"
    assert "with or without fever" in en.sign and "포진상 습진" in ko.sign and "열이 없어도" in ko.sign


# The same checks on the entries added for DermNet NZ's topics (not yet clinically reviewed).
DERMNET_NZ_TOPIC_FLAGS = [
    ("purpura", "en", r"^spots that do not fade when pressed, in a child, or with fever", "emergency"),
    ("purpura", "ko", r"어린이에게 생기거나, 열", "emergency"),
    ("purpura", "en", r"^a new rash of spots that do not fade when pressed", "same_day"),
    ("actinic_keratosis", "en", r"squamous cell skin cancer", "within_two_weeks"),
    ("melanocytic_naevus", "en", r"changing in size, shape or colour", "within_two_weeks"),
    ("melanocytic_naevus", "ko", r"크기·모양·색이 변하거나", "within_two_weeks"),
    ("telangiectasia", "en", r"yellow whites of the eyes", "same_day"),
    ("hidradenitis_suppurativa", "en", r"redness that spreads, or a fever", "within_days"),
]


@pytest.mark.parametrize(
    "key, lang, pattern, when",
    [
        ("dermnet_systemic_disease", "en", r"^new yellowing", "same_day"),
        ("dermnet_systemic_disease", "ko", r"새로 노랗게", "same_day"),
        ("dermnet_vasculitis", "en", r"^a new rash of purple", "same_day"),
        ("dermnet_vasculitis", "en", r"in a child, or with fever", "emergency"),
        ("dermnet_vasculitis", "ko", r"어린이에게", "emergency"),
        (
            "dermnet_pigmentation_light_diseases",
            "en",
            r"dark spot .* changes in size, shape or colour",
            "within_two_weeks",
        ),
        ("dermnet_vascular_tumors", "en", r"haemangioma near the eye, nose, lips or nappy area", "within_two_weeks"),
        ("dermnet_vascular_tumors", "en", r"ulcerates\) or covers or presses on the eye", "within_days"),
        ("dermnet_contact_dermatitis", "en", r"trouble breathing or swallowing", "emergency"),
        ("dermnet_infestations_bites", "en", r"trouble breathing or swallowing", "emergency"),
        ("dermnet_infestations_bites", "ko", r"중증열성혈소판감소증후군\(SFTS\)이나 쯔쯔가무시증", "same_day"),
        ("dermnet_viral_infections", "en", r"^suspected shingles.*within 3 days", "same_day"),
        (
            "dermnet_nail_disease",
            "en",
            r"new dark streak in a nail, even on its own, and especially",
            "within_two_weeks",
        ),
        ("dermnet_nail_disease", "ko", r"새로 생긴 검은 세로줄, 그것만 있어도 해당하며 특히", "within_two_weeks"),
        ("dermnet_psoriasis_lichen_planus", "en", r"with or without fever \(erythroderma\)", "same_day"),
        ("dermnet_psoriasis_lichen_planus", "ko", r"열이 없어도 해당\(홍피증\)", "same_day"),
        ("dermnet_exanthems_drug_eruptions", "en", r"contact the doctor who prescribed it", "same_day"),
        (
            "dermnet_exanthems_drug_eruptions",
            "en",
            r"^painful skin.*dusky red or purple target-like spots",
            "emergency",
        ),
        ("dermnet_exanthems_drug_eruptions", "ko", r"처방한 의사", "same_day"),
    ]
    + DERMNET_NZ_TOPIC_FLAGS,
)
def test_red_flags_the_clinical_review_asked_for(book, key, lang, pattern, when):
    assert [f.when for f in _flags(book, key, lang, pattern)] == [when]


def test_salicylic_acid_carries_the_diabetes_and_circulation_warning(book):
    en = [s for s in book.get("dermnet_viral_infections").self_care if "salicylic" in s]
    ko = [s for s in book.get("dermnet_viral_infections", "ko").self_care if "살리실산" in s]
    assert len(en) == len(ko) == 1
    assert "diabetes or poor circulation" in en[0] and "foot ulcers" in en[0]
    assert "당뇨병이나 혈액순환 장애" in ko[0] and "궤양" in ko[0]


def _korean_texts(d) -> list[str]:
    return [d.name, d.summary, d.see_a_doctor, *d.signs, *d.look_alikes, *d.self_care]


def test_korean_wording_the_review_asked_for(book):
    keys = book.keys()
    for key in keys:
        for text in _korean_texts(book.get(key, "ko")):
            assert "약산성" not in text and "백선(무좀)" not in text and "숨참" not in text, (key, text)
    for key in ("dermnet_exanthems_drug_eruptions", "dermnet_urticaria"):  # en says cool, not lukewarm
        assert any("시원한 샤워" in s for s in book.get(key, "ko").self_care), key
    assert book.get("dermnet_fungal_infections", "ko").name.startswith("백선(피부사상균 감염)")


def test_jusa_is_first_written_as_jusa_ttalgiko_so_it_cannot_read_as_injection(book):
    keys = book.keys()
    for key in keys:
        for text in _korean_texts(book.get(key, "ko")):
            if "주사" in text:
                assert text[text.index("주사") :].startswith("주사(딸기코)"), (key, text)


@pytest.mark.parametrize("key", STUDY_CONDITIONS + DERMNET_NZ_TOPICS)
def test_study_conditions_open_with_what_a_photo_cannot_tell(book, key):
    assert "A photo" in book.get(key).summary.split(". ")[1]
    assert "사진으로는" in book.get(key, "ko").summary


@pytest.mark.parametrize("key", ["basal_cell_carcinoma", "purpura"])
def test_a_possible_skin_cancer_and_a_non_fading_rash_carry_the_urgent_badge(book, key):
    assert book.get(key).urgency == "urgent"


def test_the_mole_entry_says_a_melanoma_may_be_shown_as_a_mole(book):
    # A model trained on these topics has no melanoma class: its nearest answer is "mole".
    assert "a melanoma may be shown as a mole" in book.get("melanocytic_naevus").summary
    assert "흑색종도 점으로 보일 수 있습니다" in book.get("melanocytic_naevus", "ko").summary
    assert book.get("melanocytic_naevus").urgency != "routine"


def test_psoriasis_look_alikes_no_longer_call_pale_marks_vitiligo(book):
    assert not any("Vitiligo" in s for s in book.get("psoriasis").look_alikes)
    assert not any("백반증" in s for s in book.get("psoriasis", "ko").look_alikes)


def test_melanoma_summary_makes_the_same_claim_in_both_languages(book):
    assert "a serious skin cancer that can spread" in book.get("melanoma").summary
    assert "퍼질 수 있는 위험한 피부암" in book.get("melanoma", "ko").summary


def test_links_the_review_asked_for(book):
    assert "https://dermnetnz.org/topics/infantile-haemangioma" in book.get("dermnet_vascular_tumors").links
    assert any("health.kdca.go.kr" in u for u in book.get("dermnet_infestations_bites").links)


# --------------------------------------------------------------------------- red flags: the loader


def test_a_generated_entry_whose_korean_timing_differs_is_refused(tmp_path):
    entry = make_entry_v2(
        "rash_a",
        en_flags=[("same_day", True), ("routine", False)],
        ko_flags=[("within_days", True), ("routine", False)],
    )
    bad = write_file(tmp_path / "bad.yaml", [entry], version=2)
    with pytest.raises(DescriptionsError) as info:
        desc.load_descriptions(bad)
    assert str(info.value) == (
        f"descriptions file {bad}: entry 'rash_a' field 'ko.red_flags[1].when': "
        "'within_days' but en says 'same_day': a translation must carry the same timing"
    )


@pytest.mark.parametrize(
    "en_flags, ko_flags, urgency, field, problem",
    [
        (
            [("routine", False), ("routine", False)],
            [("routine", False)],
            "routine",
            "ko.red_flags",
            "1 red flags but en has 2",
        ),
        (
            [("same_day", True)],
            [("same_day", False)],
            "routine",
            "ko.red_flags[1].escalation",
            "False but en says True",
        ),
        ([("same_day", False)], None, "soon", "urgency", "'soon' is lower than red flag en.red_flags[1] (same_day"),
        ([("within_two_weeks", False)], None, "routine", "urgency", "needs ('soon')"),
        ([("within_days", True)], None, "urgent", "en.red_flags[1].escalation", "does not go beyond"),
        ([("whenever", False)], None, "routine", "en.red_flags[1].when", "expected one of routine, within_two_weeks"),
        ([], None, "routine", "en.red_flags", "expected a non-empty list"),
    ],
)
def test_red_flag_mistakes_are_one_line_naming_the_entry(tmp_path, en_flags, ko_flags, urgency, field, problem):
    bad = write_file(tmp_path / "bad.yaml", [make_entry_v2("rash_a", en_flags, ko_flags, urgency)], version=2)
    with pytest.raises(DescriptionsError) as info:
        desc.load_descriptions(bad)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"descriptions file {bad}: entry 'rash_a' field '{field}': ")
    assert problem in message


def test_a_flag_source_must_be_https(tmp_path):
    entry = make_entry_v2("rash_a")
    entry["en"]["red_flags"][0]["source"] = "http://example.org/page"
    bad = write_file(tmp_path / "bad.yaml", [entry], version=2)
    with pytest.raises(DescriptionsError, match=r"field 'en.red_flags\[1\].source': expected an https URL"):
        desc.load_descriptions(bad)


def test_each_layout_says_what_to_change_when_mixed(tmp_path):
    new_in_old = write_file(tmp_path / "a.yaml", [make_entry_v2("rash_a")], version=1)
    with pytest.raises(DescriptionsError, match=r"field 'en.red_flags': needs 'schema_version: 2'"):
        desc.load_descriptions(new_in_old)
    old_in_new = write_file(tmp_path / "b.yaml", [make_entry("rash_a")], version=2)
    with pytest.raises(
        DescriptionsError,
        match=r"field 'en.see_a_doctor': not used with 'schema_version: 2': "
        r"list red_flags",
    ):
        desc.load_descriptions(old_in_new)


def test_a_user_file_of_the_old_layout_still_loads_beside_the_new_bundled_file(isolated_config):
    user = isolated_config / "descriptions.yaml"
    user.write_text(
        "diseases:\n  - key: heat_rash\n    urgency: routine\n"
        + "".join(
            f"    {lang}:\n      name: Heat rash\n      summary: 땀띠 summary.\n      signs: [Red]\n"
            f"      look_alikes: []\n      self_care: [Cool down]\n      see_a_doctor: If it spreads ({lang}).\n"
            for lang in ("en", "ko")
        ),
        encoding="utf-8",
    )
    book = desc.load_descriptions()
    assert book.get("heat rash", "ko").see_a_doctor == "If it spreads (ko)."
    assert book.get("heat rash").red_flags == () and book.get("heat rash").to_dict()["red_flags"] == []
    assert book.get("vasculitis").red_flags  # the bundled entries keep theirs


def test_a_schema_2_user_entry_renders_its_advice(tmp_path):
    extra = write_file(
        tmp_path / "extra.yaml",
        [make_entry_v2("rash_a", [("routine", False), ("emergency", True), ("routine", False)])],
        version=2,
    )
    d = desc.load_descriptions(extra).get("rash_a", "ko")
    assert d.see_a_doctor == (
        "다음의 경우 즉시 119에 연락하거나 응급실로 가세요: sign 2 (ko). "
        "다음의 경우 일반 진료를 예약하세요: sign 1 (ko); sign 3 (ko)."
    )
    assert d.to_dict()["red_flags"][1] == {
        "sign": "sign 2 (ko)",
        "when": "emergency",
        "escalation": True,
        "source": None,
    }


def test_the_panel_names_every_condition_of_a_prediction_set_beyond_the_top_k(book, capsys, wide):
    # A set can hold more conditions than --top-k lists; none may show as a raw folder name.
    from skinfood_cli.descriptions import display_names
    from skinfood_cli.output import print_prediction
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS, make_prediction

    classes = ["acne", "atopic_dermatitis", "psoriasis"]
    rec = make_prediction("x.jpg", [0.4, 0.3, 0.3], classes, book, lang="ko", top_k=1, qhat=math.inf).to_dict()
    assert rec["prediction_set"] == classes and len(rec["top_k"]) == 1
    print_prediction(rec, "ko", NOT_A_DIAGNOSIS["ko"], dict(zip(classes, display_names(classes, book, "ko"))))
    panel = capsys.readouterr().out
    assert "여드름, 아토피피부염, 건선" in panel and "atopic_dermatitis" not in panel


# --------------------------------------------------------------------------- not a diagnosis, on every surface


@pytest.fixture
def wide(monkeypatch):
    """A console wide enough that no line wraps, so whole sentences can be looked for."""
    from skinfood_cli import output

    monkeypatch.setenv("COLUMNS", "4000")
    output._consoles.clear()
    yield
    output._consoles.clear()


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_prediction_panel_and_table_carry_the_advice_and_the_not_a_diagnosis_line(book, capsys, wide, lang):
    from skinfood_cli.output import print_prediction, print_prediction_table
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS, make_prediction

    keys = book.keys()
    records = []
    for i, key in enumerate(keys):
        probs = [0.9 if j == i else 0.1 / (len(keys) - 1) for j in range(len(keys))]
        rec = make_prediction(f"{key}.jpg", probs, keys, book, lang=lang).to_dict()
        assert rec["advice"] == book.get(key, lang).see_a_doctor and rec["urgency"] == book.get(key).urgency
        print_prediction(rec, lang, NOT_A_DIAGNOSIS[lang])
        panel = capsys.readouterr().out
        assert rec["advice"] in panel and NOT_A_DIAGNOSIS[lang] in panel, key
        records.append(rec)
    print_prediction_table(records, NOT_A_DIAGNOSIS[lang])
    assert capsys.readouterr().out.rstrip().endswith(NOT_A_DIAGNOSIS[lang])


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_diseases_show_carries_the_not_a_diagnosis_line(cli, book, wide, lang):
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS

    keys = book.keys()
    for key in keys:
        r = cli("diseases", "show", key, "--lang", lang)
        assert r.exit_code == 0, r.output
        assert r.stdout.rstrip().endswith(NOT_A_DIAGNOSIS[lang]), key
        for sentence in rf.advice_sentences(book.get(key, lang).red_flags, lang):
            assert sentence in r.stdout, (key, sentence)
    listing = cli("diseases", "--lang", lang)
    assert listing.exit_code == 0 and listing.stdout.rstrip().endswith(NOT_A_DIAGNOSIS[lang])
    shown = json.loads(cli("diseases", "show", "vasculitis", "--format", "json").stdout)
    assert shown["urgency"] == "urgent" and shown["red_flags"][0]["when"] == "emergency"


def test_diseases_show_prints_an_old_layout_entry_as_written(cli, tmp_path, wide):
    extra = write_file(tmp_path / "extra.yaml", [make_entry("rash_a")])
    r = cli("diseases", "show", "rash_a", "--descriptions", extra)
    assert r.exit_code == 0, r.output
    assert "  If it spreads." in r.stdout and "Not a diagnosis" in r.stdout


def test_the_page_shows_the_same_not_a_diagnosis_line_in_both_languages():
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS

    web = Path(desc.__file__).parent / "serving" / "web"
    page, script = (web / "index.html").read_text(encoding="utf-8"), (web / "app.js").read_text(encoding="utf-8")
    assert re.search(r'id="not-diagnosis"[^>]*data-i18n="notDiagnosis">' + re.escape(NOT_A_DIAGNOSIS["en"]), page)
    for lang in ("en", "ko"):
        assert f"notDiagnosis: '{NOT_A_DIAGNOSIS[lang]}'" in script, lang


def test_the_review_table_in_the_docs_lists_every_red_flag_and_its_source(book):
    doc = (Path(desc.__file__).parent.parent / "docs" / "descriptions.md").read_text(encoding="utf-8")
    table = rf.review_table([(k, book.get(k).urgency, book.get(k).red_flags) for k in book.keys()])
    assert f"<!-- red-flags:start -->\n{table}<!-- red-flags:end -->" in doc, (
        "docs/descriptions.md is stale: run python tools/red_flags_table.py docs/descriptions.md"
    )
