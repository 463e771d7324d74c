"""The LMTP operator options of ``imapd serve`` (docs/delivery.md):
parsed into LmtpConfig, bounded by RFC 5321 §4.5.3.1, one usage line each."""

from __future__ import annotations

import pytest
from twisted.python import usage

from imapd.cli_serve import ServeOptions
from imapd.core.config import LmtpConfig


def parsed(*argv: str) -> LmtpConfig:
    options = ServeOptions()
    options.parseOptions(list(argv))
    return options.config().lmtp


def test_defaults_are_lmtp_configs_defaults() -> None:
    assert parsed() == LmtpConfig()


def test_every_option_reaches_the_config() -> None:
    lmtp = parsed("--lmtp-separator", "-", "--lmtp-max-message", "1000",
                  "--lmtp-max-recipients", "250", "--lmtp-max-line", "2000",
                  "--lmtp-idle-timeout", "60", "--lmtp-domain", "Example.ORG",
                  "--quota-full-tempfail")
    assert lmtp == LmtpConfig(domains=("example.org",), separator="-", max_message=1000,
                              max_recipients=250, max_line=2000, idle_timeout=60.0,
                              quota_full_tempfail=True)
    assert parsed("--lmtp-separator", "").separator == ""  # subaddressing off


@pytest.mark.parametrize("argv, message", [
    (["--lmtp-max-recipients", "99"], "--lmtp-max-recipients must be at least 100 (RFC 5321 §4.5.3.1.8)"),
    (["--lmtp-max-line", "999"], "--lmtp-max-line must be at least 1000 (RFC 5321 §4.5.3.1.6)"),
    (["--lmtp-max-message", "0"], "--lmtp-max-message and --lmtp-idle-timeout must be positive"),
    (["--lmtp-idle-timeout", "0"], "--lmtp-max-message and --lmtp-idle-timeout must be positive"),
    (["--lmtp-separator", "@"], '--lmtp-separator must be one character other than @, space, ", <, >'),
    (["--lmtp-separator", "++"], '--lmtp-separator must be one character other than @, space, ", <, >'),
])
def test_out_of_bounds_is_one_usage_line(argv: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError) as caught:
        ServeOptions().parseOptions(argv)
    assert str(caught.value) == message
