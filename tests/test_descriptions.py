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
    # KDCA: topic pages only; its portal's front page (gnrlzHealthInfoMain.do) says nothing a patient can act on.
    "health.kdca.go.kr": r"/healthinfo/biz/health/gnrlzHealthInfo/gnrlzHealthInfo/gnrlzHealthInfoView\.do"
    r"\?cntnts_sn=\d+",
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


# The most a badge may claim from one flag a typical photo shows (a flag without escalation): the
# badge's own words, "urgent: the same day, or within about two weeks for a possible skin cancer".
BADGE_CEILING = {
    "routine": "routine",
    "within_two_weeks": "urgent",
    "within_days": "soon",
    "same_day": "urgent",
    "emergency": "urgent",
}


def test_no_bundled_badge_claims_more_than_a_typical_photo_of_its_class_supports(book):
    # The loader refuses the other direction (a flag without escalation more urgent than the badge
    # allows) and an escalation that does not go beyond the badge: see the test above.
    order = rf.URGENCY_ORDER.index
    for key in book.keys():
        d = book.get(key)
        typical = [f for f in d.red_flags if not f.escalation]
        ceiling = max((order(BADGE_CEILING[f.when]) for f in typical), default=0)
        assert order(d.urgency) <= ceiling, f"{key}: badge {d.urgency!r} but no flag without escalation needs it"


# Fever, as the reader meets it in each language ("열감", warmth, is not fever).
FEVER = {"en": r"\b(?:fever|temperature)\b", "ko": r"고열|발열|(?<![가-힣])열(?=[이과을나,\s)]|$)"}
# Words that say fever is not needed for the flag.
NO_FEVER_NEEDED = {"en": r"\b(?:with or |even )without (?:a )?fever\b", "ko": r"열이 없어도|열이 없더라도"}
# Fever named on its own as one of a flag's choices: "..., or a fever", "..., 또는 고열", "...거나 열이 남".
BARE_FEVER = {
    "en": r"(?:^|[,;(]|\bor\b)\s*(?:an?\s+)?(?:high\s+)?(?:fever|temperature)\s*(?=$|[,;)]|\bor\b)",
    "ko": r"(?:^|[,;(·]|또는|거나)\s*(?:고열|발열|열)(?:이\s*(?:남|있음))?\s*(?=$|[,;)·]|또는)",
}
# What is left of "a rash with high fever" once fever is gone: only what any photo of the class shows.
PHOTO_WORDS = {
    "en": r"\b(?:an?|the|any|new|with|and|high|rash|spots?|blisters?|hives|sores?|bumps?|fever|temperature)\b",
    "ko": r"고열|발열|열|발진|반점|물집|두드러기|함께|동반한|생긴|나는|있음|과|와|을|를|이|가|남",
}
# The top-level choices of a flag ("A, or B"; "A; B").
CHOICES = {"en": r",\s*or\s+|;\s*", "ko": r",?\s*또는\s+|;\s*"}
# Who must be seen whatever the other signs: for them fever may add urgency, but never gate it.
SEEN_WHATEVER_ELSE = {
    "newborn": {"en": r"newborn|under 4 weeks", "ko": r"신생아|생후 4주"},
    "pregnancy": {"en": r"pregnan", "ko": r"임신"},
    "weak immunity": {"en": r"weakened immune", "ko": r"면역이 약한|면역저하"},
    "diabetes": {"en": r"diabetes", "ko": r"당뇨"},
}
URGENT_WHENS = ("same_day", "emergency")


def _conditions(sign: str) -> str:
    """`sign` without what its parentheses explain ("(possible cellulitis)"): the conditions alone."""
    while re.search(r"\([^()]*\)", sign):
        sign = re.sub(r"\s*\([^()]*\)", "", sign)
    return sign


def _choices(sign: str, lang: str) -> list[str]:
    return [c for c in re.split(CHOICES[lang], _conditions(sign)) if c.strip()]


def _needs_fever(text: str, lang: str) -> bool:
    """Whether `text` names fever as a condition (not as "with or without fever")."""
    return bool(re.search(FEVER[lang], re.sub(NO_FEVER_NEEDED[lang], "", _conditions(text))))


def _fever_alone(sign: str, lang: str, when: str) -> str | None:
    """The choice of `sign` that rests on fever alone, or None.

    Any urgent flag: fever named bare as one of its choices ("redness that spreads, or a fever").
    An emergency flag also: a choice that is fever plus what any photo of the class shows ("spots
    that do not fade, or a high fever with the rash"): fever with a rash is a same-day matter.
    """
    core = re.sub(NO_FEVER_NEEDED[lang], "", _conditions(sign))
    if re.search(BARE_FEVER[lang], core):
        return core
    if when == "emergency":
        for choice in _choices(core, lang):
            rest = re.sub(PHOTO_WORDS[lang], "", choice.lower())
            if re.search(FEVER[lang], choice) and not re.sub(r"[\W_]+", "", rest):
                return choice
    return None


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_no_same_day_or_emergency_flag_rests_on_fever_alone(book, lang):
    # Fever is missing in many who are seriously ill (newborns, older people, anyone who took a
    # painkiller) and, on its own with a rash, is not an emergency.
    for key in book.keys():
        for flag in book.get(key, lang).red_flags:
            if flag.when in URGENT_WHENS:
                assert _fever_alone(flag.sign, lang, flag.when) is None, (key, flag.when, flag.sign)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_fever_never_gates_the_flags_of_those_seen_whatever_else(book, lang):
    # A same-day or emergency choice naming a newborn, pregnancy, weak immunity or diabetes together
    # with fever is allowed only beside one that sends the same people as soon without fever.
    for key in book.keys():
        urgent = [c for f in book.get(key, lang).red_flags if f.when in URGENT_WHENS for c in _choices(f.sign, lang)]
        for group, patterns in SEEN_WHATEVER_ELSE.items():
            mine = [c for c in urgent if re.search(patterns[lang], c)]
            if any(_needs_fever(c, lang) for c in mine):
                assert any(not _needs_fever(c, lang) for c in mine), (key, group, mine)


def _fever_checks_catch(lang: str, when: str, sign: str) -> bool:
    return _fever_alone(sign, lang, when) is not None


@pytest.mark.parametrize(
    "lang, when, sign",
    [  # what the bundled file said before review, and must never say again
        ("en", "emergency", "spots that do not fade when a glass is pressed on them, or a high fever with the rash"),
        ("ko", "emergency", "유리컵으로 눌러도 사라지지 않는 반점, 또는 발진과 함께 고열"),
        ("en", "same_day", "redness that spreads, or a fever"),
        ("ko", "same_day", "부위가 뜨겁게 붓고 아프거나 열이 남"),
        ("en", "same_day", "swollen legs, blood in the urine, new muscle weakness or a high fever"),
        ("ko", "same_day", "다리 부종, 혈뇨, 새로 생긴 근력 저하, 또는 고열"),
    ],
)
def test_the_fever_checks_catch_what_the_review_found(lang, when, sign):
    assert _fever_checks_catch(lang, when, sign)


@pytest.mark.parametrize(
    "lang, sign",
    [
        ("en", "blisters with fever in a newborn baby or a pregnant person"),
        ("ko", "신생아나 임신부에게 열과 함께 생긴 물집"),
    ],
)
def test_the_gate_check_catches_the_newborn_flag_the_review_found(lang, sign):
    choices = _choices(sign, lang)
    assert any(re.search(SEEN_WHATEVER_ELSE["newborn"][lang], c) and _needs_fever(c, lang) for c in choices)
    assert not any(re.search(SEEN_WHATEVER_ELSE["newborn"][lang], c) and not _needs_fever(c, lang) for c in choices)


# When a sign began: a history the photo cannot show.
ONSET = {"en": r"\b(?:new|sudden|suddenly|recent)\b", "ko": r"새로|갑자기|최근"}


def _words(text: str) -> str:
    """Lower case, no parentheses and what they hold, letters and digits only: for comparing phrases."""
    return " ".join(re.sub(r"[\W_]+", " ", re.sub(r"\([^)]*\)", " ", text.lower())).split())


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_an_escalation_flag_is_not_one_of_the_signs_a_photo_of_its_class_shows(book, lang):
    # `signs` lists what photos of the class show. An escalation flag that is mostly one of them
    # ("suspected shingles, a painful band of blisters on one side of the body") adds nothing a
    # photo cannot show, so the badge must cover it instead. One that names such a sign together
    # with more ("new sores in the mouth ... after starting a new medicine"), or with when it began
    # ("new yellowing of the skin": a history, which no photo shows), may.
    onset = ONSET[lang]
    for key in book.keys():
        d = book.get(key, lang)
        shown = [s for s in map(_words, d.signs) if len(s.split()) >= 3]
        for flag in d.red_flags:
            said = _words(flag.sign)
            if flag.escalation:
                mostly = [s for s in shown if s in said and len(s) >= 0.6 * len(said)]
                assert not [s for s in mostly if not re.search(onset, said.replace(s, ""))], (key, flag.sign)


@pytest.mark.parametrize(
    "key, typical",
    [
        ("dermnet_viral_infections", r"^suspected shingles"),  # a painful band of blisters: same day
        ("dermnet_vascular_tumors", r"^a lump that grows quickly, bleeds"),  # pyogenic granuloma
    ],
)
def test_classes_whose_typical_photo_shows_a_sooner_sign_are_not_routine(book, key, typical):
    (flag,) = _flags(book, key, "en", typical)
    assert not flag.escalation and book.get(key).urgency != "routine"
    assert rf.URGENCY_ORDER.index(book.get(key).urgency) >= rf.URGENCY_ORDER.index(rf.URGENCY_FLOOR[flag.when])


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
    ("purpura", "ko", r"어린이에게 생기거나, 열이 나거나", "emergency"),
    ("purpura", "en", r"^a new rash of spots that do not fade when pressed", "same_day"),
    ("actinic_keratosis", "en", r"squamous cell skin cancer", "within_two_weeks"),
    ("melanocytic_naevus", "en", r"changing in size, shape or colour", "within_two_weeks"),
    ("melanocytic_naevus", "ko", r"크기·모양·색이 변하거나", "within_two_weeks"),
    ("telangiectasia", "en", r"yellow whites of the eyes", "same_day"),
    ("hidradenitis_suppurativa", "en", r"^redness that spreads, or a flare with a fever", "same_day"),
    ("hidradenitis_suppurativa", "en", r"^a lump that becomes very painful, hot and swollen", "within_days"),
]


# The second clinical read: four flags that could delay urgent care, and what it asked to add.
SECOND_REVIEW_FLAGS = [
    # any blisters or sores in a newborn, fever or not; chickenpox and shingles at their worst
    ("dermnet_viral_infections", "en", r"^any blisters, sores or spots on a baby under 4 weeks old", "emergency"),
    ("dermnet_viral_infections", "ko", r"^생후 4주 미만 아기에게 생긴 모든 물집", "emergency"),
    ("dermnet_viral_infections", "en", r"^chickenpox or shingles with breathlessness, chest pain", "emergency"),
    ("dermnet_viral_infections", "ko", r"^수두나 대상포진이 있으면서 숨이 차거나", "emergency"),
    ("dermnet_viral_infections", "en", r"adult, during pregnancy, or .* weakened immune .*24 hours", "same_day"),
    ("dermnet_viral_infections", "ko", r"성인, 임신부, 면역이 약한 사람에게 생긴 수두 같은 발진.*24시간", "same_day"),
    # sudden swelling of the lips is anaphylaxis too; hives with a fever within days
    ("dermnet_urticaria", "en", r"^sudden swelling of the lips, mouth, .* a hoarse voice", "emergency"),
    ("dermnet_urticaria", "ko", r"^입술, 입안, 얼굴, 혀, 목이 갑자기 부음, 목소리가 쉼", "emergency"),
    ("dermnet_urticaria", "en", r"^hives with a fever or feeling unwell$", "within_days"),
    ("dermnet_urticaria", "ko", r"^열이 나거나 몸이 안 좋으면서 생긴 두드러기$", "within_days"),
    # a diabetic foot within one working day (NICE NG19), at once with fever, spreading redness or black skin
    ("dermnet_systemic_disease", "en", r"foot if you have diabetes, even if it does not hurt.*one working", "same_day"),
    ("dermnet_systemic_disease", "ko", r"^당뇨병이 있는 사람의 발에 생긴 상처.*아프지 않아도 해당", "same_day"),
    ("dermnet_systemic_disease", "en", r"diabetes together with a fever .*skin turning black", "emergency"),
    ("dermnet_systemic_disease", "ko", r"^당뇨병이 있는 사람의 발에 .*피부가 검게 변함", "emergency"),
    # a beard-area haemangioma can sit in the airway too
    ("dermnet_vascular_tumors", "en", r"beard area\) who has noisy breathing, a hoarse cry", "emergency"),
    ("dermnet_vascular_tumors", "ko", r"\(수염이 나는 부위\)에 혈관종이 있는 아기가 숨 쉴 때", "emergency"),
    ("dermnet_vascular_tumors", "en", r"beard area \(chin, jaw, lower lip or neck\), even with no", "within_days"),
    ("dermnet_vascular_tumors", "ko", r"부위\)에 생긴 아기의 혈관종, 숨쉬기에 문제가 없어도", "within_days"),
    ("dermnet_vascular_tumors", "en", r"^a bruise-like patch that keeps growing on an older", "within_two_weeks"),
    ("dermnet_vascular_tumors", "ko", r"^노인의 두피나 얼굴에서 점점 커지는 멍 같은 반점", "within_two_weeks"),
    # fever alone with a rash is a same-day matter; the emergency keeps the signs of meningitis
    ("dermnet_exanthems_drug_eruptions", "en", r"^a high fever with the rash", "same_day"),
    ("dermnet_exanthems_drug_eruptions", "ko", r"^발진과 함께 나는 고열", "same_day"),
    ("dermnet_exanthems_drug_eruptions", "en", r"^spots that do not fade.*drowsiness, confusion", "emergency"),
    ("dermnet_exanthems_drug_eruptions", "ko", r"^유리컵으로 눌러도.*졸리거나, 정신이 혼미", "emergency"),
    # mouth, eye or genital sores send one to 119 only when new, with spreading blisters or a new medicine
    (
        "dermnet_bullous_disease",
        "en",
        r"new sores in the mouth, eyes or genitals together with a spreading",
        "emergency",
    ),
    (
        "dermnet_bullous_disease",
        "ko",
        r"물집성 발진과 함께 생기거나 새 약을 시작한 뒤 생긴 입·눈·생식기의 새",
        "emergency",
    ),
    ("dermnet_bullous_disease", "en", r"getting worse if you already have a blistering disease", "within_days"),
    # what the read asked to add
    ("dermnet_lupus_connective_tissue", "en", r"swallowing or breathing with muscle weakness, a fit", "emergency"),
    ("dermnet_lupus_connective_tissue", "ko", r"근력 저하와 함께 삼키기나 숨쉬기가 힘듦, 경련", "emergency"),
    ("dermnet_lupus_connective_tissue", "en", r"^a sore \(ulcer\) on a fingertip, or .* turns black", "same_day"),
    ("dermnet_lupus_connective_tissue", "ko", r"^손가락 끝에 생긴 궤양", "same_day"),
    ("acne", "en", r"thoughts of harming yourself, especially while taking isotretin", "same_day"),
    ("acne", "ko", r"스스로를 해치고 싶은 생각이 듦, 특히 이소트레티노인.*109", "same_day"),
    ("dermnet_acne_rosacea", "en", r"thoughts of harming yourself, especially while taking isotretin", "same_day"),
    ("dermnet_acne_rosacea", "ko", r"스스로를 해치고 싶은 생각이 듦, 특히 이소트레티노인.*109", "same_day"),
    ("dermnet_contact_dermatitis", "en", r"after eating lacquer-tree chicken \(ottak\)", "same_day"),
    ("dermnet_contact_dermatitis", "ko", r"^옻닭이나 옻순 등 옻이 든 음식을 먹은 뒤 온몸으로 번지는 발진", "same_day"),
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
    + DERMNET_NZ_TOPIC_FLAGS
    + SECOND_REVIEW_FLAGS,
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
    assert any("health.kdca.go.kr" in u for u in book.get("dermnet_viral_infections").links)  # 수두와 대상포진
    for key in book.keys():
        d = book.get(key)
        for url in (*d.links, *(f.source or "" for f in d.red_flags)):
            assert "gnrlzHealthInfoMain" not in url, (key, url)  # KDCA's portal front page is no source


@pytest.mark.parametrize(
    "lang, baby, no_fever", [("en", "under 4 weeks", "even without a fever"), ("ko", "생후 4주", "열이 없어도")]
)
def test_a_newborn_with_blisters_goes_to_emergency_whatever_the_temperature(book, lang, baby, no_fever):
    # Newborn herpes often starts without a fever: fever is named only to say it is not needed.
    flags = [f for f in book.get("dermnet_viral_infections", lang).red_flags if baby in f.sign]
    assert [f.when for f in flags] == ["emergency"]
    assert no_fever in flags[0].sign and not _needs_fever(flags[0].sign, lang)


def test_sudden_lip_swelling_is_no_longer_an_ordinary_sign_of_hives(book):
    en, ko = book.get("dermnet_urticaria"), book.get("dermnet_urticaria", "ko")
    assert [s for s in en.signs if "lips" in s] == [s for s in en.signs if "emergency" in s] != []
    assert [s for s in ko.signs if "입술" in s] == [s for s in ko.signs if "응급" in s] != []
    (emergency,) = [f for f in en.red_flags if f.when == "emergency"]
    assert "adrenaline pen" in emergency.sign and "vomiting" in emergency.sign


@pytest.mark.parametrize("key", ["dermnet_bacterial_infections", "folliculitis", "hidradenitis_suppurativa"])
def test_spreading_redness_is_same_day_in_every_skin_infection_entry(book, key):
    assert [f.when for f in _flags(book, key, "en", r"redness that spreads|^spreading, warm, painful redness")] == [
        "same_day"
    ]


@pytest.mark.parametrize("key", ["acne", "dermnet_acne_rosacea"])
def test_very_low_mood_with_acne_names_the_korean_crisis_line(book, key):
    for lang in ("en", "ko"):
        (flag,) = [f for f in book.get(key, lang).red_flags if "109" in f.sign]
        assert flag.when == "same_day" and "119" in flag.sign


def test_warts_and_molluscum_can_take_up_to_two_years(book):
    assert "up to two years" in book.get("dermnet_viral_infections").summary
    assert "2년" in book.get("dermnet_viral_infections", "ko").summary


def test_a_drug_rash_out_of_hours_names_a_service_that_is_open(book):
    en, ko = book.get("dermnet_exanthems_drug_eruptions"), book.get("dermnet_exanthems_drug_eruptions", "ko")
    assert not [f for f in en.red_flags if "pharmacist" in f.sign] and not [f for f in ko.red_flags if "약사" in f.sign]
    (drug_en,) = _flags(book, "dermnet_exanthems_drug_eruptions", "en", "contact the doctor who prescribed it")
    (drug_ko,) = _flags(book, "dermnet_exanthems_drug_eruptions", "ko", "처방한 의사")
    assert "NHS 111" in drug_en.sign and "119" in drug_en.sign and "emergency department" in drug_en.sign
    assert "119에 전화해 상담" in drug_ko.sign and "응급실" in drug_ko.sign


@pytest.mark.parametrize(
    "lang, sores_alone", [("en", r"sores in the mouth, eyes or genitals"), ("ko", r"입·눈·생식기의 상처")]
)
def test_mouth_eye_or_genital_sores_alone_are_not_a_blistering_emergency(book, lang, sores_alone):
    # Someone with long-standing pemphigus has such sores for months: 119 is for new ones with a
    # spreading blistering rash or after a new medicine (possible Stevens-Johnson syndrome).
    (emergency,) = [f for f in book.get("dermnet_bullous_disease", lang).red_flags if f.when == "emergency"]
    assert not [c for c in _choices(emergency.sign, lang) if re.fullmatch(sores_alone, c.strip())]


@pytest.mark.parametrize(
    "key, wrong, right",
    [
        ("dermnet_hair_loss", "뜨거운 열기구", "고데기·드라이어의 높은 열"),  # a hot-air balloon
        ("dermnet_vasculitis", "피 섞인 기침", "기침할 때 피가 나옴(객혈)"),
        ("purpura", "혈액 희석제", "항응고제·항혈소판제"),
        ("dermnet_infestations_bites", "기타 기생충 감염", "외부 기생충(진드기·이) 감염"),  # not worms
        ("eczema", "헤르페스가 감염된", "헤르페스바이러스에 감염된"),
        ("psoriasis", "화상은", "일광화상은"),
        ("vitiligo", "화상을", "일광화상을"),
    ],
)
def test_korean_words_that_meant_something_else(book, key, wrong, right):
    text = " ".join(_korean_texts(book.get(key, "ko")))
    assert right in text and wrong not in text.replace(right, "")


def test_korean_red_flags_read_after_their_lead_in(book):
    # "다음의 경우 일반 진료를 예약하세요: ..." is followed by what to look for, never by half a
    # clause of purpose ("진단을 확인하기 위해, 특히 퍼지고 있다면"), as five entries had it.
    for key in book.keys():
        for flag in book.get(key, "ko").red_flags:
            assert not re.search(r"위해(?:,|$)|있다면", _conditions(flag.sign)), (key, flag.sign)


@pytest.mark.parametrize(
    "key, lang, needles",
    [
        ("dermnet_infestations_bites", "en", ["repeat the treatment after 7 days", "2-4 weeks", "burn or put oil"]),
        ("dermnet_infestations_bites", "ko", ["7일 뒤에 한 번 더", "2~4주", "짜거나 불로 지지거나 기름을"]),
        ("dermnet_exanthems_drug_eruptions", "en", ["measles or chickenpox, phone"]),
        ("dermnet_exanthems_drug_eruptions", "ko", ["홍역이나 수두가 의심되면", "먼저 전화로 알려"]),
        ("dermnet_viral_infections", "en", ["chickenpox or shingles, phone", "crusted over"]),
        ("dermnet_viral_infections", "ko", ["먼저 전화로 알리고", "딱지가 될 때까지"]),
        ("dermnet_bacterial_infections", "en", ["48 hours after starting antibiotics"]),
        ("dermnet_bacterial_infections", "ko", ["항생제를 시작하고 48시간"]),
        ("dermnet_fungal_infections", "en", ["combination creams", "betamethasone"]),
        ("dermnet_fungal_infections", "ko", ["복합 연고", "베타메타손"]),
    ],
)
def test_self_care_the_review_asked_for(book, key, lang, needles):
    said = " ".join(book.get(key, lang).self_care)
    assert [n for n in needles if n not in said] == []


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
    from skinfood_cli.cli.output import print_prediction
    from skinfood_cli.descriptions import display_names
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
    from skinfood_cli.cli import output

    monkeypatch.setenv("COLUMNS", "4000")
    output._consoles.clear()
    yield
    output._consoles.clear()


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_prediction_panel_and_table_carry_the_advice_and_the_not_a_diagnosis_line(book, capsys, wide, lang):
    from skinfood_cli.cli.output import print_prediction, print_prediction_table
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


# --- the notice in machine answers ------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_every_machine_answer_carries_the_not_a_diagnosis_notice(cli, lang):
    """An app built on the JSON shows the summary and advice: the notice travels with them."""
    from skinfood_cli.descriptions import NOT_A_DIAGNOSIS, load_descriptions
    from skinfood_cli.prediction import make_prediction

    shown = json.loads(cli("diseases", "show", "eczema", "--format", "json", "--lang", lang).stdout)
    assert shown["notice"] == NOT_A_DIAGNOSIS[lang]
    record = make_prediction("p.jpg", [0.7, 0.2, 0.1], ["acne", "eczema", "vitiligo"], load_descriptions(), lang=lang)
    assert record.to_dict()["notice"] == NOT_A_DIAGNOSIS[lang] != ""
    out_of_scope = make_prediction("p.jpg", [0.7, 0.3], ["acne", "eczema"], None, lang=lang, scope_score=-1.0)
    assert out_of_scope.notice == NOT_A_DIAGNOSIS[lang]
