"""Masking personal data in what a call left behind: e-mail addresses, phone numbers, card numbers and IBANs.

With ``TRANSCRIPT_REDACTION=true`` every transcript and summary passes through
:func:`redact_conversation` before it is stored (sessions.services.lifecycle.session_store_post_call,
which the webhook and the reconciler both call), so the database never holds the originals.
Each match is replaced by a placeholder that names its kind (``[redacted email]``); the rest of
the sentence stays as it was.

Precision matters as much as recall: a support transcript is full of numbers that are not personal
(order numbers, dates, times, amounts). So a card number must pass the Luhn check and start like a
card, an IBAN must have its country's length and pass the ISO 7064 mod-97 check, and a phone number
must be written like one: with a leading ``+``, or in groups (``(555) 123-4567``, ``030 123456``);
a bare run of digits is an order number, not a phone number. Spelt-out numbers ("five five five…")
and e-mail addresses read aloud ("john at example dot com") are not recognised.

Pure functions over precompiled patterns: no I/O, no settings read here. Every pattern is linear:
digit groups are separated by a required character and matched possessively, so no input backtracks
exponentially.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

EMAIL = "email"
PHONE = "phone"
CARD = "card"
IBAN = "iban"
# The order the passes run in: an e-mail's local part may hold digits, an IBAN holds a long digit run.
KINDS = (EMAIL, IBAN, CARD, PHONE)
PLACEHOLDERS = {kind: f"[redacted {kind}]" for kind in KINDS}

_EMAIL = re.compile(
    r"(?<![\w.%+\-])"
    r"[\w.%+\-]++@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
    r"(?![\w\-]|\.[A-Za-z0-9])"
)

# Letters and digits, single spaces allowed between them (IBANs are written in groups of four).
_IBAN = re.compile(r"(?<![\w])([A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,32})", re.ASCII)
# ISO 13616 lengths by country, from SWIFT's IBAN registry.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

# 13 to 19 digits, optionally in groups split by single spaces or hyphens; not part of a longer token.
_CARD = re.compile(r"(?<![\w\-/.])\d(?:[ \-]?\d){12,18}(?!\w|[\-/.]\d)")
_CARD_GROUPINGS = ((4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 1), (4, 4, 4, 2), (4, 4, 4, 3))
# Issuer prefixes: Visa 4, Mastercard 51-55 and 2221-2720, Amex 34/37, Diners 30/36/38/39, JCB 35,
# Discover/UnionPay/Maestro 6, Maestro 50/56-58.
_CARD_PREFIX = re.compile(r"\A(?:4|5[0-8]|2[2-7]|3[0456789]|6)")

# A phone-number candidate: groups of digits (the first may carry +, any may be an area code in parentheses)
# joined by one separator each; two groups at least unless it starts with +. Which part of it is a phone
# number, if any, is decided in Python.
_PHONE_GROUP = r"(?:\d++|\(\d{1,5}\))"
_PHONE_NEXT = rf"(?:[ .\-/]{_PHONE_GROUP}|(?<=\))\ ?\d++)"
_PHONE = re.compile(
    rf"(?<![\w+\-/#.:@])(?:\+\d++{_PHONE_NEXT}{{0,10}}|{_PHONE_GROUP}{_PHONE_NEXT}{{1,10}})(?![\w@]|[\-/.:]\w)"
)
_PHONE_TOKEN = re.compile(r"\+?\(?\d+\)?")
_DATE = r"(?:\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{2,4})"
_DATE_START = re.compile(rf"\A{_DATE}(?!\d)")
# What may come before a phone number inside one candidate: nothing, a one-digit count, or a date.
_PHONE_PREFIX = re.compile(rf" ?(?:(?:\d|{_DATE}) )?")
_WORTH_A_LOOK = re.compile(r"[0-9@]")
_THOUSANDS = re.compile(r"\A\d{1,3}(?:\.\d{3})+\Z")


@dataclass(frozen=True)
class Redacted:
    """A conversation with its personal data masked, and how many placeholders of each kind it holds."""

    conversation: dict[str, Any]
    counts: dict[str, int]


def redact_text(text: str) -> str:
    """``text`` with e-mail addresses, IBANs, card numbers and phone numbers replaced by placeholders.

    A placeholder matches no pattern, so masking twice gives what masking once gave.
    """
    if not text or not _WORTH_A_LOOK.search(text):
        return text
    text = _EMAIL.sub(PLACEHOLDERS[EMAIL], text)
    text = _IBAN.sub(_iban, text)
    text = _CARD.sub(_card, text)
    return _PHONE.sub(_phone, text)


def placeholder_counts(texts: list[str]) -> dict[str, int]:
    """How many placeholders of each kind ``texts`` hold (every kind, zeros included): never the values."""
    return {kind: sum(text.count(placeholder) for text in texts) for kind, placeholder in PLACEHOLDERS.items()}


def redact_conversation(conversation: dict[str, Any]) -> Redacted:
    """A copy of ElevenLabs' conversation details with transcripts and summaries masked.

    Masked: each transcript turn's ``message`` and ``original_message``, and the analysis's
    ``transcript_summary`` and ``call_summary_title``. Everything else (tool calls, data collection
    results the agent was configured to gather, metadata) is kept as it came. The counts are of the
    placeholders in the result, so details masked once already (a delivery parked in the webhook
    ledger) count the same when they are stored.
    """
    masked: list[str] = []

    def mask(value: str) -> str:
        masked.append(redact_text(value))
        return masked[-1]

    result = dict(conversation)
    transcript = conversation.get("transcript")
    if isinstance(transcript, list):
        result["transcript"] = [_mask_fields(turn, ("message", "original_message"), mask) for turn in transcript]
    analysis = conversation.get("analysis")
    if isinstance(analysis, dict):
        result["analysis"] = _mask_fields(analysis, ("transcript_summary", "call_summary_title"), mask)
    return Redacted(conversation=result, counts=placeholder_counts(masked))


def _mask_fields(item: Any, keys: tuple[str, ...], mask) -> Any:
    if not isinstance(item, dict):
        return item
    return {**item, **{key: mask(item[key]) for key in keys if isinstance(item.get(key), str)}}


def mod97_valid(iban: str) -> bool:
    """ISO 7064 MOD 97-10 over a compact, upper-case IBAN: the four first characters move to the end,
    letters become 10-35, and the number leaves 1 when divided by 97."""
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


def _iban(match: re.Match[str]) -> str:
    written = match.group(1)
    length = IBAN_LENGTHS.get(written[:2].upper())
    if length is None:
        return written
    # The candidate may run on into the next word ("DE89 3704 0044 0532 0130 00 is mine"): take exactly the
    # country's number of characters, and only if the IBAN ends where a word ends.
    characters = [index for index, ch in enumerate(written) if ch != " "]
    if len(characters) < length:
        return written
    end = characters[length - 1] + 1
    rest = written[end:]
    if rest[:1].isalnum() or not mod97_valid(written[:end].replace(" ", "").upper()):
        return written
    return PLACEHOLDERS[IBAN] + rest


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, ch in enumerate(reversed(digits)):
        value = int(ch)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    written = match.group(0)
    groups = tuple(len(group) for group in re.split(r"[ \-]", written))
    digits = written.replace(" ", "").replace("-", "")
    if len(groups) > 1 and groups not in _CARD_GROUPINGS:
        return written
    if not _CARD_PREFIX.match(digits) or not luhn_valid(digits):
        return written
    return PLACEHOLDERS[CARD]


def _phone(match: re.Match[str]) -> str:
    """Mask each run of the candidate's groups that reads as a phone number, longest first, left to right.

    A run ends where a space separates groups (or the candidate ends), and starts where the candidate starts,
    after a number masked before it, or after a one-digit count or a date: "2 555-123-4567" and
    "15.03.2024 555-123-4567" mask the number, but no number starts inside "9400 1000 0000 0000 0000 00".
    """
    written = match.group(0)
    tokens = list(_PHONE_TOKEN.finditer(written))
    edges = [0] + [i for i in range(1, len(tokens)) if written[tokens[i - 1].end() : tokens[i].start()] == " "]
    ends = sorted({i - 1 for i in edges[1:]} | {len(tokens) - 1}, reverse=True)
    pieces, done = [], 0
    for first in edges:
        if done > tokens[first].start() or not _PHONE_PREFIX.fullmatch(written[done : tokens[first].start()]):
            continue
        last = next(
            (
                last
                for last in ends
                if last >= first
                and _looks_like_phone(written[tokens[first].start() : tokens[last].end()], tokens[first : last + 1])
            ),
            None,
        )
        if last is not None:
            pieces += [written[done : tokens[first].start()], PLACEHOLDERS[PHONE]]
            done = tokens[last].end()
    return "".join(pieces) + written[done:]


def _looks_like_phone(text: str, tokens: list[re.Match[str]]) -> bool:
    groups = [token.group(0).strip("+()") for token in tokens]
    digits = sum(len(group) for group in groups)
    # A one-digit group at the end is a count ("call 555-123-4567 2 times"), not part of the number.
    if len(groups[-1]) < 2:
        return False
    if text.startswith("+"):
        return 8 <= digits <= 15
    if len(groups) < 2 or not 9 <= digits <= 12 or not 2 <= len(groups[0]) <= 5:
        return False
    # Written the way national numbers are: an area code in parentheses, groups joined by - . or /
    # (555-123-4567, 030/123456), or spaces after a trunk prefix 0 (020 7946 0958) or in the North American
    # 3-3-4. Numbers that merely follow each other ("order 48213377 10 items") are not one phone number.
    separators = set(re.sub(r"[\d()+]", "", text))
    if not (
        text.startswith("(")
        or " " not in separators
        or groups[0].startswith("0")
        or [len(group) for group in groups] == [3, 3, 4]
    ):
        return False
    # Reference numbers in fours (1234-5678-9012), dates (2024-03-15, 15.03.2024) and dotted thousands
    # (123.456.789) are not phone numbers.
    if all(len(group) == 4 for group in groups):
        return False
    return not (_DATE_START.match(text) or _THOUSANDS.match(text))
