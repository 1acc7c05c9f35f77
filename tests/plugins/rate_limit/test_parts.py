"""rate_limit's parts on their own: OpenAI-style durations, configuration checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.plugins.rate_limit.headers import duration
from tests.support import start_up_error


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.0004, "1ms"),  # rounded up: a client that waits what it reads is never early
        (0.25, "250ms"),
        (1.0, "1s"),
        (6.672000000000001, "6.672s"),  # float noise is not a millisecond
        (17.28, "17.28s"),
        (60.0, "1m0s"),
        (360.5, "6m0.5s"),
        (3723.0, "1h2m3s"),
    ],
)
def test_durations_are_written_the_way_openai_writes_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("tenant = { rpm = 0 }", "[plugins.rate_limit] key `tenant.rpm`: must be at least 1"),
        ('models = { "gpt-4o" = { tpm = -5 } }', "key `models.gpt-4o.tpm`: must be at least 1"),
        ("rpm = 5", "[plugins.rate_limit] key `rpm`: unknown key"),
        ('on_counter_error = "maybe"', "[plugins.rate_limit] key `on_counter_error`"),
    ],
)
async def test_a_configuration_mistake_is_one_clear_line(
    tmp_path: Path, table: str, message: str
) -> None:
    text = f'[store]\nurl = "sqlite:///{tmp_path}/g.db"\n[plugins.rate_limit]\n{table}\n'
    assert message in await start_up_error(text, tmp_path)
