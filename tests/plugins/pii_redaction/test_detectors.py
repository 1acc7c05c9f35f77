"""Each detector and its validation: what counts, what looks alike and does not, and how
overlaps and actions resolve. The corpus test measures recall; these pin the rules."""

from __future__ import annotations

import zlib

import pytest

from interlock.plugins.pii_redaction.actions import DEFAULT_ACTIONS, Vault, apply, mask
from interlock.plugins.pii_redaction.checks import (
    base62,
    card_issuer,
    github_checksum_ok,
    iban_ok,
    luhn_ok,
    ssn_ok,
)
from interlock.plugins.pii_redaction.detectors import TYPES, Detector

ALL = Detector(TYPES)


def found(text: str, detector: Detector = ALL) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in detector.find(text)]


def github_token(body30: str, prefix: str = "ghp_") -> str:
    return prefix + body30 + base62(zlib.crc32(body30.encode()))


# -- validations ---------------------------------------------------------------------------
def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112")


def test_card_issuer_prefixes_and_lengths() -> None:
    assert card_issuer("4111111111111111")  # Visa
    assert card_issuer("5555555555554444")  # Mastercard
    assert card_issuer("2223003122003222")  # Mastercard 2-series
    assert card_issuer("378282246310005")  # Amex, 15
    assert not card_issuer("3782822463100055")  # Amex is never 16
    assert card_issuer("6011111111111117")  # Discover
    assert not card_issuer("1234567812345670")  # no network starts with 1
    assert not card_issuer("7000000000000000")


def test_iban_length_and_mod97() -> None:
    assert iban_ok("DE89370400440532013000")
    assert iban_ok("GB82WEST12345698765432")
    assert not iban_ok("DE89370400440532013001")  # checksum
    assert not iban_ok("DE8937040044053201300")  # length for DE
    assert not iban_ok("XX89370400440532013000")  # no such country


def test_ssn_rules() -> None:
    assert ssn_ok("536", "22", "1847")
    for area, group, serial in [
        ("000", "12", "3456"),
        ("666", "12", "3456"),
        ("912", "12", "3456"),
        ("536", "00", "1847"),
        ("536", "22", "0000"),
        ("078", "05", "1120"),  # the Woolworth wallet card
    ]:
        assert not ssn_ok(area, group, serial)


def test_github_checksum() -> None:
    token = github_token("zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ")
    assert token.endswith("0mLq17")  # GitHub's published example
    assert github_checksum_ok(token)
    assert not github_checksum_ok(token[:-1] + ("8" if token[-1] != "8" else "9"))


# -- detectors -----------------------------------------------------------------------------
def test_cards_in_every_usual_writing() -> None:
    for card in ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111"]:
        assert found(f"card: {card}.") == [("credit_card", card)]
    assert found("amex 3782 822463 10005 ok") == [("credit_card", "3782 822463 10005")]
    assert found("4111 1111-1111 1111") == []  # two kinds of separator
    assert found("4111 1111 1111 1112") == []  # Luhn
    assert found("order 12 4111 1111 1111 1111") == [("credit_card", "4111 1111 1111 1111")]
    assert found("id=x4111111111111111") == []  # inside a word


def test_ssn_needs_separators_or_a_name() -> None:
    assert found("ssn 536-22-1847 on file") == [("ssn", "536-22-1847")]
    assert found("SSN: 536221847") == [("ssn", "536221847")]
    assert found("Social Security No. 536221847") == [("ssn", "536221847")]
    assert found("order 536221847") == []
    assert found("000-22-1847 or 536-22-0000") == []


def test_iban_with_and_without_spaces() -> None:
    assert found("to DE89 3704 0044 0532 0130 00 now") == [("iban", "DE89 3704 0044 0532 0130 00")]
    assert found("IBAN:GB82WEST12345698765432.") == [("iban", "GB82WEST12345698765432")]
    assert found("DE89 3704 0044 0532 0130 01") == []


def test_ip_addresses_that_point_at_someone() -> None:
    assert found("from 203.0.113.7 and 10.1.2.3") == [
        ("ip_address", "203.0.113.7"),
        ("ip_address", "10.1.2.3"),
    ]
    assert found("AAAA 2001:db8:85a3::8a2e:370:7334") == [
        ("ip_address", "2001:db8:85a3::8a2e:370:7334")
    ]
    assert found("from 2001:db8:4006:812::200e.") == [("ip_address", "2001:db8:4006:812::200e")]
    # loopback, unspecified, link-local, CIDR notation, impossible octets, versions
    quiet = "127.0.0.1 0.0.0.0 ::1 fe80::1:2:3 10.0.0.0/8 256.1.1.1 v1.2.3.4 [::]:8443"
    assert found(quiet) == []
    assert found("at 11:59:00, mac 00:1a:2b:3c:4d:5e, std::vector, xs[10::3]") == []


def test_phone_numbers_in_international_formats() -> None:
    numbers = [
        "+1 415-555-0199",
        "(212) 736-5000",
        "650.253.0000",
        "+44 20 7946 0958",
        "0044 20 7946 0958",
        "+49 30 901820",
        "+33 1 42 68 53 00",
        "+81 3-1234-5678",
        "+61 2 9374 4000",
        "+91 98765 43210",
    ]
    for number in numbers:
        assert found(f"call {number} today") == [("phone", number)], number


def test_number_runs_that_are_not_phones() -> None:
    quiet = [
        "epoch 1732531200",  # bare digits: ids and timestamps
        "on 2025-03-14 15:30",
        "took 85.98828125 s",
        "version 91823 (92011)",
        "ISBN 978-0-13-468599-1",
        "12 345 678 items",
    ]
    for text in quiet:
        assert found(text) == [], text


def test_phone_region_decides_numbers_without_a_country_code() -> None:
    uk = Detector(["phone"], region="GB")
    assert found("ring 020 7946 0958", uk) == [("phone", "020 7946 0958")]
    assert found("ring 020 7946 0958", Detector(["phone"], region="US")) == []


def test_emails() -> None:
    assert found("mail a.b+tag@mail.example.co.uk.") == [("email", "a.b+tag@mail.example.co.uk")]
    quiet = "@decorator user@localhost git@github.com:acme/x.git logo@2x.png pkg@1.2.3"
    assert found(quiet) == []
    assert found("git@gitlab.example.com:~/repo and git@host.example.org:x.git") == []
    assert found("curl -u ops@ci.example.com:s3cret") == [("email", "ops@ci.example.com")]


def test_secrets() -> None:
    key = "sk-proj-" + "Ab3" * 15
    ant = "sk-ant-api03-" + "x9Y" * 30 + "AA"
    gh = github_token("zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ")
    aws = "AKIAIOSFODNN7EXAMPLE"
    text = f"{key} {ant} {gh} {aws}"
    assert found(text) == [
        ("api_key", key),
        ("api_key", ant),
        ("github_token", gh),
        ("aws_key", aws),
    ]
    assert found("sk-learn-pipeline-step-with-a-long-name") == []  # no digits: a slug
    bad_gh = gh[:-1] + ("A" if gh[-1] != "A" else "B")
    assert found(bad_gh) == []
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert found(f"aws_secret_access_key = {secret}") == [("aws_key", secret)]
    assert found(f"value {secret}") == []  # 40 characters with no name are not a key


def test_jwt_must_decode() -> None:
    jwt = (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    )
    assert found(f"Bearer {jwt}") == [("jwt", jwt)]
    assert found("eyJub3QiOiJ.eyJhIGp3dA.x") == []


def test_private_keys_whole_or_cut_off() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK==\n-----END RSA PRIVATE KEY-----"
    assert found(f"key:\n{pem}\nthanks") == [("private_key", pem)]
    cut = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nAAEwggSjAgEAAoIB"
    assert found(cut + "\n\nbye") == [("private_key", cut)]


def test_overlaps_go_to_the_earlier_type() -> None:
    jwt = "eyJhbGciOiJub25lIn0.eyJwaG9uZSI6IjQxNTU1NTAxOTkifQ.415-555-0199"
    assert found(jwt) == [("jwt", jwt)]


# -- actions -------------------------------------------------------------------------------
def test_mask_keeps_the_last_four_and_the_separators() -> None:
    assert mask("4111 1111 1111 1111") == "**** **** **** 1111"
    assert mask("ab") == "ab"


def test_actions_and_counts() -> None:
    text = "mail a@example.com or b@example.com, again a@example.com; card 4111111111111111"
    vault = Vault()
    counts: dict[str, int] = {}
    blocked: list[str] = []
    out = apply(text, ALL.find(text), DEFAULT_ACTIONS, vault, counts, blocked)
    assert out == "mail [EMAIL_1] or [EMAIL_2], again [EMAIL_1]; card ************1111"
    assert counts == {"email": 3, "credit_card": 1}
    assert vault.by_placeholder == {"[EMAIL_1]": "a@example.com", "[EMAIL_2]": "b@example.com"}
    assert blocked == []
    apply(text, ALL.find(text), {**DEFAULT_ACTIONS, "credit_card": "block"}, vault, {}, blocked)
    assert blocked == ["credit_card"]


def test_a_placeholder_the_user_wrote_is_never_handed_out() -> None:
    vault = Vault()
    vault.reserved.add("[EMAIL_1]")
    assert vault.placeholder("email", "a@example.com") == "[EMAIL_2]"


@pytest.mark.parametrize("kind", TYPES)
def test_every_type_has_a_default_action(kind: str) -> None:
    assert DEFAULT_ACTIONS[kind] in ("redact", "mask", "tokenize", "block")
