"""Red flags: the signs that send a person to a doctor, each with how soon.

A description entry (schema version 2) lists its red flags in each language:

    en:
      red_flags:
        - {when: same_day, sign: "spreading, warm, painful redness", source: https://...}
    ko:
      red_flags:
        - {when: same_day, sign: "붉고 뜨겁고 아픈 부위가 번짐"}

The person reads sentences rendered from them (`render_advice`), one per
timing, most urgent first, with the timing words fixed here per language, so
the Korean can never say "within a few days" where the English says "today".
`check_red_flags` is what makes the two languages agree: the same number of
flags, and at each position the same `when` and `escalation`.

Timing (`WHENS`, least to most urgent) follows the NHS's three levels of advice
("see a GP", "ask for an urgent GP appointment or call 111", "call 999 or go to
A&E"), split where skin needs it:

    routine           book an ordinary appointment
    within_two_weeks  suspected skin cancer (NICE NG12's two-week referral)
    within_days       see a doctor within a few days
    same_day          see a doctor today
    emergency         call emergency services or go to an emergency department now

An entry's `urgency` (routine / soon / urgent: the badge beside a prediction)
must be at least `URGENCY_FLOOR[when]` for every flag, except flags marked
`escalation: true`: a sign that needs more than a typical photo of the class
shows (a symptom such as fever, a history such as a new medicine, a place such
as near the eye). Escalations must go beyond the badge, or the mark is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

WHENS = ("routine", "within_two_weeks", "within_days", "same_day", "emergency")
URGENCY_ORDER = ("routine", "soon", "urgent")
URGENCY_FLOOR = {
    "routine": "routine",
    "within_two_weeks": "soon",
    "within_days": "soon",
    "same_day": "urgent",
    "emergency": "urgent",
}
_FLAG_FIELDS = ("when", "sign", "escalation", "source")

# One lead-in per timing and language; a flag's sign completes it.
ADVICE_LEAD = {
    "en": {
        "emergency": "Call emergency services or go to an emergency department now for",
        "same_day": "See a doctor the same day for",
        "within_days": "See a doctor within a few days for",
        "within_two_weeks": "See a doctor within about two weeks, without waiting for a routine check-up, for",
        "routine": "Book an ordinary appointment for",
    },
    "ko": {
        "emergency": "다음의 경우 즉시 119에 연락하거나 응급실로 가세요",
        "same_day": "다음의 경우 당일에 진료를 받으세요",
        "within_days": "다음의 경우 며칠 안에 진료를 받으세요",
        "within_two_weeks": "다음의 경우 정기 검진을 기다리지 말고 2주 안에 진료를 받으세요",
        "routine": "다음의 경우 일반 진료를 예약하세요",
    },
}


@dataclass(frozen=True)
class RedFlag:
    """One sign in one language and how soon it needs a doctor."""

    sign: str
    when: str
    escalation: bool = False
    source: str | None = None

    def to_dict(self) -> dict:
        return {"sign": self.sign, "when": self.when, "escalation": self.escalation, "source": self.source}


def parse_red_flags(value: Any, field: str, bad: Callable[[str, str], Exception]) -> tuple[RedFlag, ...]:
    """Validates one language's `red_flags` list.

    Args:
        value: The raw YAML value.
        field: Its name for messages, e.g. "ko.red_flags".
        bad: Builds the loader's one-line error from (field, problem).

    Raises:
        The error `bad` builds, for the first problem found.
    """
    if not isinstance(value, list) or not value:
        raise bad(field, "expected a non-empty list of {when, sign} mappings")
    flags = []
    for i, raw in enumerate(value, start=1):
        where = f"{field}[{i}]"
        if not isinstance(raw, dict):
            raise bad(where, "expected a mapping with when and sign")
        for name in raw:
            if name not in _FLAG_FIELDS:
                raise bad(f"{where}.{name}", f"unknown field (allowed: {', '.join(_FLAG_FIELDS)})")
        when, sign = raw.get("when"), raw.get("sign")
        if when not in WHENS:
            raise bad(f"{where}.when", f"expected one of {', '.join(WHENS)}, not {when!r}")
        if not isinstance(sign, str) or not sign.strip():
            raise bad(f"{where}.sign", "expected a non-empty string")
        escalation = raw.get("escalation", False)
        if not isinstance(escalation, bool):
            raise bad(f"{where}.escalation", "expected true or false")
        source = raw.get("source")
        if source is not None and not (isinstance(source, str) and re.fullmatch(r"https://\S+", source)):
            raise bad(f"{where}.source", "expected an https URL")
        flags.append(RedFlag(sign=" ".join(sign.split()).rstrip("."), when=when, escalation=escalation, source=source))
    return tuple(flags)


def check_red_flags(flags: dict[str, tuple[RedFlag, ...]], urgency: str, bad: Callable[[str, str], Exception]) -> None:
    """Checks that every language carries the English timing, and the badge covers it.

    Args:
        flags: Language -> its red flags; "en" is the reference.
        urgency: The entry's badge (one of `URGENCY_ORDER`).
        bad: Builds the loader's one-line error from (field, problem).
    """
    reference = flags["en"]
    for lang, own in flags.items():
        if lang == "en":
            continue
        if len(own) != len(reference):
            raise bad(
                f"{lang}.red_flags",
                f"{len(own)} red flags but en has {len(reference)}: every language "
                "needs the same red flags in the same order",
            )
        for i, (mine, theirs) in enumerate(zip(own, reference), start=1):
            if mine.when != theirs.when:
                raise bad(
                    f"{lang}.red_flags[{i}].when",
                    f"{mine.when!r} but en says {theirs.when!r}: a translation must carry the same timing",
                )
            if mine.escalation != theirs.escalation:
                raise bad(f"{lang}.red_flags[{i}].escalation", f"{mine.escalation} but en says {theirs.escalation}")
    rank = URGENCY_ORDER.index
    for i, flag in enumerate(reference, start=1):
        floor = URGENCY_FLOOR[flag.when]
        if not flag.escalation and rank(urgency) < rank(floor):
            raise bad(
                "urgency",
                f"{urgency!r} is lower than red flag en.red_flags[{i}] ({flag.when}: "
                f"{flag.sign!r}) needs ({floor!r}); raise urgency, or mark the flag escalation: true "
                "if it needs more than a typical photo of this class shows",
            )
        if flag.escalation and rank(floor) <= rank(urgency):
            raise bad(
                f"en.red_flags[{i}].escalation",
                f"the flag ({flag.when}) does not go beyond the entry's urgency {urgency!r}: drop escalation: true",
            )


def advice_sentences(flags: tuple[RedFlag, ...], lang: str) -> list[str]:
    """One sentence per timing present in `flags`, most urgent first.

    Returns:
        E.g. ["See a doctor the same day for: a; b.", "Book an ordinary appointment for: c."]
    """
    leads = ADVICE_LEAD.get(lang, ADVICE_LEAD["en"])
    sentences = []
    for when in reversed(WHENS):
        signs = [f.sign for f in flags if f.when == when]
        if signs:
            sentences.append(f"{leads[when]}: {'; '.join(signs)}.")
    return sentences


def render_advice(flags: tuple[RedFlag, ...], lang: str) -> str:
    """The "when to see a doctor" text every surface prints: `advice_sentences` joined."""
    return " ".join(advice_sentences(flags, lang))


def most_urgent(flags: tuple[RedFlag, ...]) -> str | None:
    """The most urgent `when` among `flags`, or None for none."""
    return max((f.when for f in flags), key=WHENS.index, default=None)


def review_table(entries: list[tuple[str, str, tuple[RedFlag, ...]]]) -> str:
    """A Markdown table of every red flag for clinical review (docs/descriptions.md).

    Args:
        entries: (key, urgency, English red flags) per entry, in file order.
    """
    rows = ["| entry (urgency) | when | red flag (English) | timing follows |", "|---|---|---|---|"]
    for key, urgency, flags in entries:
        for i, flag in enumerate(sorted(flags, key=lambda f: -WHENS.index(f.when))):
            first = f"`{key}` ({urgency})" if i == 0 else ""
            when = flag.when + (" (escalation)" if flag.escalation else "")
            sign = flag.sign.replace("|", "\\|")
            rows.append(f"| {first} | {when} | {sign} | {flag.source or ''} |")
    return "\n".join(rows) + "\n"
