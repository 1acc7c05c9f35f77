"""The validations that keep pattern matches honest: a digit run is a card only if its
Luhn sum and issuer prefix agree, an IBAN only if its country length and mod-97 hold,
a GitHub token only if its CRC32 tail matches, a JWT only if its parts decode.

Pure functions over strings, no I/O, no regexes of their own: `detectors.py` finds the
candidates and asks these whether each one is real.
"""

from __future__ import annotations

import base64
import binascii
import zlib

import msgspec

__all__ = [
    "card_issuer",
    "github_checksum_ok",
    "iban_ok",
    "jwt_ok",
    "luhn_ok",
    "ssn_ok",
]


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_issuer(digits: str) -> bool:
    """True when the number's prefix and length belong to a card network (IIN ranges of
    Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro, Mir): most random
    Luhn-valid digit runs (ids, timestamps) start with something no issuer uses."""
    n = len(digits)
    p2 = int(digits[:2])
    p4 = int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16  # Mastercard
    if p2 in (34, 37):
        return n == 15  # American Express
    if 2200 <= p4 <= 2204:
        return n == 16  # Mir
    if p4 == 6011 or p2 == 65 or 644 <= int(digits[:3]) <= 649 or p2 == 62:
        return 16 <= n <= 19  # Discover, UnionPay
    if 3528 <= p4 <= 3589:
        return 16 <= n <= 19  # JCB
    if 300 <= int(digits[:3]) <= 305 or p2 in (36, 38, 39):
        return 14 <= n <= 19  # Diners Club
    if p2 == 50 or 56 <= p2 <= 69:
        return 12 <= n <= 19  # Maestro
    return False


# Advertised or otherwise famous numbers the SSA never issued to a person.
_SSN_NEVER = frozenset({"078051120", "219099999", "123456789"})


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """The SSA's rules: no area 000, 666 or 900-999, no group 00, no serial 0000."""
    if area == "000" or area == "666" or area[0] == "9":
        return False
    if group == "00" or serial == "0000":
        return False
    return area + group + serial not in _SSN_NEVER


# IBAN length per country (SWIFT's IBAN registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_ok(compact: str) -> bool:
    """`compact` is upper-case without spaces: the country's length, then ISO 13616's
    mod-97 check (the first four characters moved to the end, letters as 10..35)."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in moved))
    except ValueError:
        return False
    return number % 97 == 1


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n: int, width: int = 6) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _BASE62[r] + out
    return out.rjust(width, "0")


def github_checksum_ok(token: str) -> bool:
    """`ghp_` / `gho_` / `ghu_` / `ghs_` / `ghr_` + 30 random characters + 6 characters of
    base62 CRC32 over those 30 (GitHub's 2021 token format)."""
    body = token[4:]
    if len(body) != 36:
        return False
    return base62(zlib.crc32(body[:30].encode())) == body[30:]


class _JwtHeader(msgspec.Struct):
    alg: str


_decode_header = msgspec.json.Decoder(_JwtHeader).decode
_decode_object = msgspec.json.Decoder(dict[str, object]).decode


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def jwt_ok(header: str, payload: str) -> bool:
    """A JWS compact serialisation: the header decodes to a JSON object naming its `alg`,
    the payload to a JSON object."""
    try:
        _decode_header(_b64url(header))
        _decode_object(_b64url(payload))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return False
    return True
