"""Plain-language descriptions of the skin conditions the model can name.

Data: ``descriptions/diseases.yaml`` (installed as ``skinfood_cli/descriptions/``),
then the user file (`user_override_path`), then ``--descriptions FILE``. A later
file adds entries or replaces a whole entry with the same key. Every file is
validated on load; a problem is one `DescriptionsError` line naming the file,
the entry and the field. An entry describes a photo class, never a diagnosis.

Two layouts load. Schema version 2 (the bundled file) lists structured red
flags per language and the "when to see a doctor" text is written from them
(`skinfood_cli.red_flags`: English and Korean must agree on every flag's
timing). Schema version 1 (the default, and older user files) gives that text
as free prose in `see_a_doctor`, used as written.

Names are compared in two forms: the exact form (`normalize_name`: case-folded,
letters and digits of any script only: "Eczema Photos" -> "eczemaphotos") and
the loose form (also without the words photo(s), picture(s), image(s), pic(s):
"Eczema Photos" -> "eczema"). `DescriptionBook.resolve_key` tries, in order:

1. the query's exact form against the exact forms of all keys and aliases;
2. the query's loose form against those exact forms;
3. the query's loose form against the loose forms of keys and aliases.

So "Eczema Photos" is the DermNet class entry ``dermnet_eczema`` (step 1) while
"eczema" and "eczema pictures" are the single condition ``eczema`` (steps 1, 2).
Uniqueness is checked per file and per level: each exact form belongs to one
entry; each loose form that is not also an exact form belongs to one entry.
Between files, the later file wins a clash.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from skinfood_cli.errors import DescriptionsError, UsageError
from skinfood_cli.red_flags import (
    WHENS,
    RedFlag,
    check_red_flags,
    parse_red_flags,
    render_advice,
)

__all__ = [
    "LANGUAGES",
    "NO_DESCRIPTION",
    "SCHEMA_VERSIONS",
    "URGENCIES",
    "WHENS",
    "Description",
    "DescriptionBook",
    "RedFlag",
    "bundled_path",
    "default_language",
    "load_descriptions",
    "normalize_name",
    "user_override_path",
    "validate_language",
]

LANGUAGES = ("en", "ko")
URGENCIES = ("routine", "soon", "urgent")
SCHEMA_VERSIONS = (1, 2)
NO_DESCRIPTION = {"en": "No description available.", "ko": "설명이 없습니다."}

_STOP_WORDS = frozenset({"photo", "photos", "picture", "pictures", "image", "images", "pic", "pics"})
_KEY_RE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_TEXT_FIELDS = ("name", "summary", "see_a_doctor")  # see_a_doctor: schema 1 only
_LIST_FIELDS = ("signs", "look_alikes", "self_care")  # only look_alikes may be []
_ENTRY_FIELDS = ("key", "aliases", "urgency", "links", *LANGUAGES)


# Beside every description and answer a person or an app reads (human output, JSON, the API).
NOT_A_DIAGNOSIS = {
    "en": "Not a diagnosis: skinfood is not a medical device. See a doctor about any skin change that worries you.",
    "ko": "진단이 아닙니다: skinfood는 의료기기가 아닙니다. 걱정되는 피부 변화는 의사와 상담하세요.",
}


def notice(lang: str) -> str:
    """The not-a-diagnosis sentence in `lang` (English for a language without one)."""
    return NOT_A_DIAGNOSIS.get(lang, NOT_A_DIAGNOSIS["en"])


@dataclass(frozen=True)
class Description:
    """One entry in one language, ready to print."""

    key: str
    lang: str
    name: str
    summary: str
    signs: tuple[str, ...]
    look_alikes: tuple[str, ...]
    self_care: tuple[str, ...]
    see_a_doctor: str
    urgency: str
    links: tuple[str, ...]
    red_flags: tuple[RedFlag, ...] = ()  # empty for a schema-1 entry (free-text see_a_doctor)

    def to_dict(self) -> dict:
        """Returns a JSON-able dict (tuples become lists, red flags dicts)."""
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}
        data["red_flags"] = [f.to_dict() for f in self.red_flags]
        data["notice"] = notice(self.lang)
        return data


class _Entry(NamedTuple):
    key: str
    aliases: tuple[str, ...]
    texts: dict[str, Description]


def normalize_name(name: str, *, loose: bool = False) -> str:
    """Reduces a name to the form used for matching.

    Args:
        name: A key, alias or user-typed class name.
        loose: Also drop the words photo(s), picture(s), image(s), pic(s).

    Returns:
        The case-folded letters and digits of `name` (any script), e.g.
        ``"Atopic-Dermatitis"`` -> ``"atopicdermatitis"``.
    """
    words = re.split(r"[\W_]+", name.casefold())
    return "".join(w for w in words if not (loose and w in _STOP_WORDS))


def _names(entry: _Entry) -> list[tuple[str, str, str]]:
    """(field, raw name, exact form) for the entry's key and aliases."""
    return [("key", entry.key, normalize_name(entry.key))] + [("aliases", a, normalize_name(a)) for a in entry.aliases]


class DescriptionBook:
    """The merged entries of all loaded files, with name resolution."""

    def __init__(self, entries: list[_Entry], sources: list[Path]):
        self._entries = {e.key: e for e in entries}  # a replaced key keeps its position
        self._sources = list(sources)
        self._exact: dict[str, str] = {}
        self._loose: dict[str, str] = {}
        for entry in (e for e in entries if self._entries[e.key] is e):  # load order: later wins
            for _, raw, exact in _names(entry):
                self._exact[exact] = self._loose[normalize_name(raw, loose=True)] = entry.key

    def keys(self) -> list[str]:
        """Returns the entry keys in file order (added entries last)."""
        return list(self._entries)

    def summaries(self, lang: str = "en") -> list[dict]:
        """Key, name and urgency of every entry in `lang`, in file order (`diseases`, GET /v1/diseases)."""
        return [
            {"key": k, "name": d.name, "urgency": d.urgency}
            for k in self.keys()
            if (d := self.get(k, lang)) is not None
        ]

    def sources(self) -> list[Path]:
        """Returns the files that were loaded, bundled first."""
        return list(self._sources)

    def resolve_key(self, name: str) -> str | None:
        """Returns the key `name` refers to (see the module docstring), or None."""
        exact, loose = normalize_name(name), normalize_name(name, loose=True)
        for form, index in ((exact, self._exact), (loose, self._exact), (loose, self._loose)):
            if form and form in index:
                return index[form]
        return None

    def get(self, key_or_name: str, lang: str = "en") -> Description | None:
        """Returns the entry for a key, alias or class name in `lang`, or None.

        Raises:
            UsageError: `lang` is not one of `LANGUAGES`.
        """
        lang = validate_language(lang)
        key = self.resolve_key(key_or_name)
        return None if key is None else self._entries[key].texts[lang]


def bundled_path() -> Path:
    """Returns the bundled diseases.yaml (installed package first, then source checkout).

    Raises:
        DescriptionsError: Neither location has the file.
    """
    from importlib import resources

    candidates = [Path(__file__).resolve().parent.parent / "descriptions" / "diseases.yaml"]
    with contextlib.suppress(ImportError, TypeError, ValueError, AttributeError):  # odd loaders
        candidates.insert(0, Path(str(resources.files("skinfood_cli") / "descriptions" / "diseases.yaml")))
    for path in candidates:
        if path.is_file():
            return path
    raise DescriptionsError(f"bundled descriptions file not found in {' or '.join(map(str, candidates))}")


def user_override_path() -> Path:
    """Returns the user's descriptions.yaml path (it need not exist).

    ``$SKINFOOD_CONFIG_DIR/descriptions.yaml`` if that variable is set, else the
    platform config dir for "skinfood" (e.g. ``~/.config/skinfood``).
    """
    env = os.environ.get("SKINFOOD_CONFIG_DIR")
    if env:
        return Path(env).expanduser() / "descriptions.yaml"
    import platformdirs

    return Path(platformdirs.user_config_dir("skinfood")) / "descriptions.yaml"


def load_descriptions(extra: Path | None = None, *, include_user: bool = True) -> DescriptionBook:
    """Loads the bundled file, then the user file if present, then `extra`.

    Args:
        extra: A descriptions file given on the command line (must exist).
        include_user: Whether to read `user_override_path()` when it exists.

    Raises:
        DescriptionsError: A file is missing, unreadable or fails validation.
    """
    paths = [bundled_path()]
    if include_user and user_override_path().is_file():
        paths.append(user_override_path())
    if extra is not None:
        extra = Path(extra)
        if not extra.is_file():
            raise DescriptionsError(f"descriptions file not found: {extra}")
        paths.append(extra)
    entries: list[_Entry] = []
    for path in paths:
        stat = path.stat()
        entries.extend(_parse_file(str(path), stat.st_mtime_ns, stat.st_size))
    return DescriptionBook(entries, paths)


def display_names(classes: list[str], book: DescriptionBook | None, lang: str = "en") -> list[str]:
    """Each class's name as a person reads it in `lang`; the class itself where no entry names it."""
    entries = [book.get(c, lang) if book is not None else None for c in classes]
    return [e.name if e else c for c, e in zip(classes, entries)]


def default_language() -> str:
    """Returns "ko" if the first set of LANGUAGE/LC_ALL/LC_MESSAGES/LANG starts with "ko", else "en"."""
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return "ko" if value.strip().lower().startswith("ko") else "en"
    return "en"


def validate_language(lang: str) -> str:
    """Returns `lang` (lower-cased) if supported.

    Raises:
        UsageError: `lang` is not "en" or "ko".
    """
    value = str(lang).strip().lower()
    if value not in LANGUAGES:
        raise UsageError(f"unknown language {str(lang)!r}: choose en or ko")
    return value


@functools.lru_cache(maxsize=16)
def _parse_file(path: str, mtime_ns: int, size: int) -> tuple[_Entry, ...]:
    """Reads and validates one file; cached per (path, mtime, size)."""
    import yaml

    def fail(message: str) -> DescriptionsError:
        return DescriptionsError(" ".join(f"descriptions file {path}: {message}".split()))

    try:
        # libyaml's C loader parses the bundled file ~10x faster than the pure-Python one.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}" if mark else ""
        raise fail(f"YAML syntax error{where}: {exc.problem or exc.context}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise fail(f"cannot read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("diseases"), list):
        raise fail("expected a mapping with a 'diseases' list at the top level")
    for field in set(data) - {"schema_version", "diseases"}:
        raise fail(f"field {field!r}: unknown field (allowed: schema_version, diseases)")
    version = data.get("schema_version", 1)
    if version not in SCHEMA_VERSIONS:
        raise fail(f"field 'schema_version': unsupported version {version!r} (expected 1 or 2)")
    entries = [_parse_entry(raw, i, fail, version) for i, raw in enumerate(data["diseases"], start=1)]
    exact_owner: dict[str, str] = {}
    for entry in entries:
        if entry.key in exact_owner.values():  # an earlier entry had the same key
            raise fail(f"entry {entry.key!r} field 'key': duplicate key")
        for field, raw, exact in _names(entry):
            owner = exact_owner.setdefault(exact, entry.key)
            if owner != entry.key:
                raise fail(f"entry {entry.key!r} field {field!r}: {raw!r} collides with entry {owner!r}")
    loose_owner: dict[str, str] = {}
    for entry in entries:
        for field, raw, _ in _names(entry):
            loose = normalize_name(raw, loose=True)
            if loose in exact_owner:
                continue  # resolution step 2 settles it
            owner = loose_owner.setdefault(loose, entry.key)
            if owner != entry.key:
                raise fail(
                    f"entry {entry.key!r} field {field!r}: {raw!r} collides with entry "
                    f"{owner!r} once words like 'photos' are ignored"
                )
    return tuple(entries)


def _parse_entry(raw: Any, index: int, fail: Callable[[str], DescriptionsError], version: int = 1) -> _Entry:
    """Validates one entry mapping and turns it into an `_Entry`."""
    named = isinstance(raw, dict) and isinstance(raw.get("key"), str) and raw["key"].strip()
    label = f"entry {raw['key']!r}" if named else f"entry #{index}"
    if not isinstance(raw, dict):
        raise fail(f"{label}: expected a mapping with key, aliases, urgency, links, en and ko")

    def bad(field: str, problem: str) -> DescriptionsError:
        return fail(f"{label} field {field!r}: {problem}")

    def field(block: dict, name: str, prefix: str = "", *, many: bool = False, optional: bool = False) -> Any:
        if name not in block:
            if optional:
                return ()
            raise bad(prefix + name, "missing field")
        value = block[name]
        if not many:
            if not isinstance(value, str) or not value.strip():
                raise bad(prefix + name, "expected a non-empty string")
            return value.strip()
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise bad(prefix + name, "expected a list of strings")
        if not value and not optional and name != "look_alikes":
            raise bad(prefix + name, "expected at least one item")
        return tuple(v.strip() for v in value)

    def known(block: dict, allowed: tuple[str, ...], prefix: str = "") -> None:
        for name in block:
            if name not in allowed:
                raise bad(f"{prefix}{name}", f"unknown field (allowed: {', '.join(allowed)})")

    known(raw, _ENTRY_FIELDS)
    key = field(raw, "key")
    if not _KEY_RE.fullmatch(key):
        raise bad("key", f"{key!r} is not lowercase snake_case (like 'acne_and_rosacea')")
    aliases = field(raw, "aliases", many=True, optional=True)
    if any(not normalize_name(a) for a in aliases):
        raise bad("aliases", "every alias needs at least one letter or digit")
    urgency = field(raw, "urgency")
    if urgency not in URGENCIES:
        raise bad("urgency", f"unknown urgency {urgency!r} (choose routine, soon or urgent)")
    links = field(raw, "links", many=True, optional=True)
    if not all(re.fullmatch(r"https?://\S+", link) for link in links):
        raise bad("links", "expected http(s) URLs")
    blocks = {}
    for lang in LANGUAGES:
        block = raw.get(lang)
        if not isinstance(block, dict):
            raise bad(lang, "missing field" if block is None else "expected a mapping")
        blocks[lang] = block
    flags = _parse_advice(blocks, version, bad, known)
    if flags:
        check_red_flags(flags, urgency, bad)
    texts = {}
    for lang, block in blocks.items():
        values = {f: field(block, f, f"{lang}.") for f in _TEXT_FIELDS if f != "see_a_doctor"}
        values.update({f: field(block, f, f"{lang}.", many=True) for f in _LIST_FIELDS})
        if flags:
            values.update(see_a_doctor=render_advice(flags[lang], lang), red_flags=flags[lang])
        else:
            values["see_a_doctor"] = field(block, "see_a_doctor", f"{lang}.")
        texts[lang] = Description(key=key, lang=lang, urgency=urgency, links=links, **values)
    return _Entry(key, aliases, texts)


def _parse_advice(
    blocks: dict[str, dict], version: int, bad: Callable[[str, str], DescriptionsError], known: Callable[..., None]
) -> dict[str, tuple[RedFlag, ...]]:
    """Checks each language block's fields for the file's layout; returns its red flags ({} for schema 1)."""
    for lang, block in blocks.items():
        if version == 1 and "red_flags" in block:
            raise bad(
                f"{lang}.red_flags",
                "needs 'schema_version: 2' at the top of the file "
                "(and no see_a_doctor: that text is written from the red flags)",
            )
        if version == 2 and "see_a_doctor" in block:
            raise bad(
                f"{lang}.see_a_doctor",
                "not used with 'schema_version: 2': list red_flags "
                "({when, sign}) instead, or set 'schema_version: 1' to keep free text",
            )
        extra = ("red_flags",) if version == 2 else ()
        known(block, _TEXT_FIELDS + _LIST_FIELDS + extra, f"{lang}.")
    if version == 1:
        return {}
    return {lang: parse_red_flags(block.get("red_flags"), f"{lang}.red_flags", bad) for lang, block in blocks.items()}
