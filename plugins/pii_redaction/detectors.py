"""Where personal data and secrets are in a text: each detector finds candidates with a
regular expression and keeps only those that pass a validation (Luhn and the issuer
prefix, mod-97, the SSA's rules, `ipaddress`, libphonenumber, GitHub's CRC32, a
decodable JWT), so ids, dates, versions and hashes are not mistaken for PII.

`Detector.find(text)` returns non-overlapping `Finding`s (start, end, type) in text
order. When two detectors claim overlapping text, the one earlier in `TYPES` wins (a
JWT before the digits inside it, a card number before a phone number). It never changes
the text and never keeps a value: the actions are `actions.py`'s business.

Cost: Python's `re` spends ~8 ns per character on a pattern that starts with a character
class, but almost nothing on one that starts with a literal. So secrets are found by
their literal prefixes (`sk-`, `eyJ`, `gh`, `AKIA`...), emails from each `@`, IPv6 from
each `:` followed by a hex digit, and everything made of digits (cards, SSNs, IBANs,
IPv4, phones) from ONE pass that yields runs of 7+ digits and separators; each run is
then examined in a small window by the specific patterns. One text is read about once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from typing import NamedTuple

import phonenumbers

from .checks import card_issuer, github_checksum_ok, iban_ok, jwt_ok, luhn_ok, ssn_ok

__all__ = ["TYPES", "Detector", "Finding"]

# In priority order: on overlapping matches the earlier type wins.
TYPES: tuple[str, ...] = (
    "private_key",
    "jwt",
    "api_key",
    "github_token",
    "aws_key",
    "email",
    "iban",
    "credit_card",
    "ssn",
    "ip_address",
    "phone",
)
_PRIORITY = {kind: i for i, kind in enumerate(TYPES)}


class Finding(NamedTuple):
    start: int
    end: int
    type: str


Found = list[Finding]


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _free_before(text: str, i: int, also: str = "") -> bool:
    """Nothing word-like (or in `also`) right before position `i`."""
    return i == 0 or not (_word(text[i - 1]) or text[i - 1] in also)


# -- secrets: found by a literal prefix ---------------------------------------------------
# A whole block; or, cut off, the BEGIN line and the lines after it that are all base64
# (or `Proc-Type: ...` headers), up to the first line that is not.
_PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
    r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
    r"|(?:\r?\n(?:[A-Za-z0-9+/=]+|[A-Za-z-]+: [^\n]*))*)"
)
_JWT = re.compile(r"eyJ([A-Za-z0-9_-]{6,})\.(eyJ[A-Za-z0-9_-]*)\.[A-Za-z0-9_-]*")
# OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-) and Anthropic (sk-ant-api03-...) keys.
_API_KEY = re.compile(r"sk-(?:ant-[a-z]+\d\d-|proj-|svcacct-|admin-)?([A-Za-z0-9_-]{32,})")
_GITHUB = re.compile(r"gh[pousr]_[A-Za-z0-9]{36}(?![\w])")
_GITHUB_PAT = re.compile(r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}(?![\w])")
_AWS_ID = re.compile(r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|IPA|NPA|NVA|PKA)[A-Z0-9]{16}(?![A-Z0-9])")
# A secret access key is 40 base64 characters with nothing to recognise it by but its name.
_SECRET_WORD = (re.compile("ecret"), re.compile("ECRET"))
_AWS_SECRET = re.compile(
    r"(?i:aws_?secret_?(?:access_?)?key|secretaccesskey)[\"']?\s*[:=]\s*[\"']?"
    r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
)


def _private_key(text: str, out: Found) -> None:
    for m in _PEM.finditer(text):
        out.append(Finding(m.start(), m.end(), "private_key"))


def _jwt(text: str, out: Found) -> None:
    for m in _JWT.finditer(text):
        if _free_before(text, m.start(), "-") and jwt_ok("eyJ" + m.group(1), m.group(2)):
            out.append(Finding(m.start(), m.end(), "jwt"))


def _api_key(text: str, out: Found) -> None:
    for m in _API_KEY.finditer(text):
        tail = m.group(1)
        # Real keys are random: letters and digits both appear (a slug has no digits).
        if (
            _free_before(text, m.start(), "-")
            and any(c.isdigit() for c in tail)
            and any(c.isalpha() for c in tail)
        ):
            out.append(Finding(m.start(), m.end(), "api_key"))


def _github_token(text: str, out: Found) -> None:
    for m in _GITHUB.finditer(text):
        if _free_before(text, m.start()) and github_checksum_ok(m.group()):
            out.append(Finding(m.start(), m.end(), "github_token"))
    for m in _GITHUB_PAT.finditer(text):
        if _free_before(text, m.start()):
            out.append(Finding(m.start(), m.end(), "github_token"))


def _aws_key(text: str, out: Found) -> None:
    for m in _AWS_ID.finditer(text):
        if m.start() == 0 or not text[m.start() - 1].isalnum():
            out.append(Finding(m.start(), m.end(), "aws_key"))
    for word in _SECRET_WORD:
        for w in word.finditer(text):
            lo = max(0, w.start() - 10)
            s = _AWS_SECRET.search(text, lo, min(len(text), w.end() + 70))
            if s is not None and s.start() <= w.start():
                out.append(Finding(s.start(1), s.end(1), "aws_key"))


# -- email: from each `@` -----------------------------------------------------------------
_LOCAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}\Z")
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
    r"(?![\w-]|\.[A-Za-z0-9])"
)
# `git@github.com:org/repo.git`: an ssh address (a path after the colon), not an email.
_SSH_PATH = re.compile(r":~?[\w.-]*/|:[\w.-]+\.git\b")


# `logo@2x.png` is an image at twice the resolution; no top-level domain is named so.
_NOT_TLDS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif", "tiff"})


def _email(text: str, out: Found) -> None:
    at = text.find("@")
    while at > 0:
        local = _LOCAL.search(text, max(0, at - 64), at)
        if local is not None and _free_before(text, local.start(), ".%+-"):
            domain = _DOMAIN.match(text, at + 1)
            if (
                domain is not None
                and domain.group().rsplit(".", 1)[1].lower() not in _NOT_TLDS
                and _SSH_PATH.match(text, domain.end()) is None
            ):
                out.append(Finding(local.start(), domain.end(), "email"))
        at = text.find("@", at + 1)


# -- IPv6: from each `:` followed by a hex digit or a colon -------------------------------
_COLON = re.compile(r":[0-9A-Fa-f:]")
# Not inside a longer run of hex and colons, nor a CIDR prefix; a sentence's full stop may follow.
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:]|\.[0-9A-Za-z]|/\d)"
)


def _personal_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Addresses that can point at a machine or a person; loopback, unspecified,
    link-local, multicast and reserved ones identify no one."""
    return not (
        address.is_loopback
        or address.is_unspecified
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
    )


def _ipv6(text: str, out: Found) -> None:
    done = -1
    n = len(text)
    for c in _COLON.finditer(text):
        at = c.start()
        if at < done:
            continue
        for m in _IPV6.finditer(text, max(0, at - 40), min(n, at + 42)):
            if not m.start() <= at < m.end():
                continue
            done = m.end()
            candidate = m.group()
            groups = [g for g in candidate.split(":") if g]
            if len(groups) < 3 or ("::" not in candidate and candidate.count(":") != 7):
                break
            try:
                address = ipaddress.IPv6Address(candidate)
            except ValueError:
                break
            if _personal_ip(address):
                out.append(Finding(m.start(), m.end(), "ip_address"))
            break


# -- everything made of digits: one pass over runs of digits and separators --------------
_NUMERIC = re.compile(r"\d[\d .\-()\u00a0]{5,}\d")
_DIGITS = re.compile(r"\d+")
_CARD = re.compile(r"\d(?:[ -]?\d){11,18}(?![\w]|[.-]\d)")
_SSN = re.compile(r"(?<![\w.-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w]|[.-]\d)")
_SSN_BARE = re.compile(r"(?<![\w.-])(\d{3})(\d{2})(\d{4})(?![\w]|[.-]\d)")
_SSN_WORDS = ("ssn", "social security", "social sec")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d|/\d)")
_IBAN = re.compile(r"(?<![\w])[A-Z]{2}\d\d(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![\w])")
_PHONE = re.compile(r"(?<![\w@+./:-])(?:\+|\b00)?\(?\d[\d ().\-\u00a0]{5,22}\d(?![\w@]|[.\-:/]\d)")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}")
# Deleting these from a run (or a phone candidate) leaves its digits: one C call to count.
_NOT_DIGITS = str.maketrans("", "", " ().-+\u00a0")


def _parentheses_ok(candidate: str) -> bool:
    """Parentheses in a phone number enclose an area code near its start: one pair, in
    order, with at most a country code before it (`(415) 555-0199`, `+1 (212) ...`)."""
    opened = candidate.find("(")
    closed = candidate.find(")")
    if opened < 0 and closed < 0:
        return True
    return (
        0 <= opened < closed
        and candidate.count("(") == 1
        and candidate.count(")") == 1
        and opened <= 4
    )


class _Numbers:
    """Cards, SSNs, IBANs, IPv4 addresses and phone numbers from the numeric runs.

    Phones: a candidate needs a leading `+`/`00` or separators (bare digit runs are ids
    and timestamps), then libphonenumber must call it a valid number (a `+` number by its
    own country, others by `region`)."""

    def __init__(self, types: Collection[str], region: str) -> None:
        self.types = frozenset(types)
        self.region = region
        # libphonenumber's verdicts (~50-100 µs each), by the candidate's hash: the same
        # numbers come back in every turn of a conversation. No number is kept.
        self._verdicts: dict[int, tuple[tuple[int, int], ...]] = {}

    def __call__(self, text: str, out: Found) -> None:
        types = self.types
        n = len(text)
        iban_done = -1
        first = len(out)  # findings of earlier runs and detectors are not looked at
        for run in _NUMERIC.finditer(text):
            s = run.group()
            if _DATE.fullmatch(s):
                continue  # 2026-11-02: the most common run in logs, and nothing else
            digits = len(s.translate(_NOT_DIGITS))
            lo = max(0, run.start() - 4)
            hi = min(n, run.end() + 2)
            if "iban" in types and run.end() > iban_done:
                iban_done = self._iban(text, max(0, run.start() - 40), hi, out)
            if "credit_card" in types and digits >= 12:
                self._card(text, run, hi, out)
            if "ssn" in types and digits >= 9:
                self._ssn(text, lo, hi, out)
            if "ip_address" in types and "." in s:
                for m in _IPV4.finditer(text, lo, hi):
                    try:
                        address = ipaddress.IPv4Address(m.group())
                    except ValueError:
                        continue
                    if _personal_ip(address):
                        out.append(Finding(m.start(), m.end(), "ip_address"))
            if "phone" in types:
                self._phones(text, lo, hi, out, first)
            first = len(out)

    @staticmethod
    def _iban(text: str, lo: int, hi: int, out: Found) -> int:
        end = -1
        for m in _IBAN.finditer(text, lo, hi):
            if iban_ok(m.group().replace(" ", "")):
                out.append(Finding(m.start(), m.end(), "iban"))
                end = m.end()
        return end

    @staticmethod
    def _card(text: str, run: re.Match[str], hi: int, out: Found) -> None:
        """Try each group of digits in the run as a card's start: the longest match
        from a number that comes before the card would otherwise hide it."""
        resume = 0
        for group in _DIGITS.finditer(run.group()):
            at = run.start() + group.start()
            if at < resume or not _free_before(text, at, ".-"):
                continue
            m = _CARD.match(text, at, hi)
            if m is None:
                continue
            candidate = m.group()
            digits = candidate.replace(" ", "").replace("-", "")
            one_separator = not (" " in candidate and "-" in candidate)
            if one_separator and card_issuer(digits) and luhn_ok(digits):
                out.append(Finding(m.start(), m.end(), "credit_card"))
                resume = m.end()

    @staticmethod
    def _ssn(text: str, lo: int, hi: int, out: Found) -> None:
        for m in _SSN.finditer(text, lo, hi):
            if ssn_ok(m.group(1), m.group(3), m.group(4)):
                out.append(Finding(m.start(), m.end(), "ssn"))
        for m in _SSN_BARE.finditer(text, lo, hi):
            # Nine bare digits are an SSN only when the text says so right before them.
            before = text[max(0, m.start() - 24) : m.start()].lower()
            if any(w in before for w in _SSN_WORDS) and ssn_ok(m.group(1), m.group(2), m.group(3)):
                out.append(Finding(m.start(), m.end(), "ssn"))

    def _phones(self, text: str, lo: int, hi: int, out: Found, first: int) -> None:
        """Phone candidates in one run's window, but for text a card, an SSN, an IBAN
        or an IP address already took (`out[first:]`: what this run found)."""
        taken = out[first:]
        for m in _PHONE.finditer(text, lo, hi):
            start, end = m.span()
            if any(start < f.end and f.start < end for f in taken):
                continue
            candidate = m.group()
            digits = len(candidate.translate(_NOT_DIGITS))
            if not 7 <= digits <= 15 or _DATE.search(candidate):
                continue
            international = candidate[0] == "+" or candidate.startswith("00")
            if not international and digits == len(candidate):
                continue  # bare digits: an id or a timestamp
            dots = candidate.count(".")
            if dots >= 3 or "  " in candidate or ".." in candidate:
                continue
            if dots == 1 and digits + 1 == len(candidate):
                continue  # a decimal number (85.98828125), not 415.555.0199
            if not _parentheses_ok(candidate):
                continue
            for a, b in self._numbers_in(candidate, digits):
                out.append(Finding(start + a, start + b, "phone"))

    def _numbers_in(self, candidate: str, digits: int) -> tuple[tuple[int, int], ...]:
        """Where in `candidate` libphonenumber sees valid numbers: all of it, or (more
        than ten digits: two numbers in a row, a number and a year) what its matcher
        finds inside. Remembered by the candidate's hash."""
        key = hash(candidate)
        known = self._verdicts.get(key)
        if known is not None:
            return known
        if self._valid(candidate):
            spans: tuple[tuple[int, int], ...] = ((0, len(candidate)),)
        elif digits > 10:
            matcher = phonenumbers.PhoneNumberMatcher(
                candidate, self.region, leniency=phonenumbers.Leniency.VALID
            )
            spans = tuple((found.start, found.end) for found in matcher)
        else:
            spans = ()
        if len(self._verdicts) >= 50_000:
            self._verdicts.clear()
        self._verdicts[key] = spans
        return spans

    def _valid(self, candidate: str) -> bool:
        number = "+" + candidate[2:] if candidate.startswith("00") else candidate
        try:
            parsed = phonenumbers.parse(number, None if number[0] == "+" else self.region)
        except phonenumbers.NumberParseException:
            return False
        return bool(phonenumbers.is_valid_number(parsed))


_NUMERIC_TYPES = frozenset({"iban", "credit_card", "ssn", "ip_address", "phone"})


class Detector:
    """The detectors for `types` (a subset of `TYPES`), run over one text at a time;
    `region` is the country assumed for phone numbers written without `+`."""

    def __init__(self, types: Collection[str], region: str = "US") -> None:
        unknown = set(types) - set(TYPES)
        if unknown:
            raise ValueError(f"unknown PII type(s): {', '.join(sorted(unknown))}")
        self.types = tuple(t for t in TYPES if t in types)
        scans = {
            "private_key": _private_key,
            "jwt": _jwt,
            "api_key": _api_key,
            "github_token": _github_token,
            "aws_key": _aws_key,
            "email": _email,
        }
        self._scans = [scans[t] for t in self.types if t in scans]
        if "ip_address" in self.types:
            self._scans.append(_ipv6)
        numeric = _NUMERIC_TYPES.intersection(self.types)
        if numeric:
            self._scans.append(_Numbers(numeric, region))

    def find(self, text: str) -> list[Finding]:
        found: Found = []
        for scan in self._scans:
            scan(text, found)
        if len(found) < 2:
            return found
        return _non_overlapping(found)


def _non_overlapping(found: Found) -> list[Finding]:
    """In text order; of overlapping findings the higher-priority one stays (the same
    text found twice, by two runs, counts once). One sort and one sweep."""
    found.sort(key=lambda f: (f.start, _PRIORITY[f.type], -f.end))
    kept: list[Finding] = [found[0]]
    for f in found[1:]:
        last = kept[-1]
        if f.start >= last.end:
            kept.append(f)
        elif _PRIORITY[f.type] < _PRIORITY[last.type]:
            kept[-1] = f
    return kept
