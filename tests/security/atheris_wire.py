"""Coverage-guided fuzzing of everything that reads client bytes before
authentication: framer + command parser, modified UTF-7, the SASL decoders
(PLAIN, SCRAM client messages) and the Dovecot passwd-file reader.

Not collected by pytest (no ``test_`` prefix). Run, e.g. for 30 minutes::

    .venv/bin/pip install atheris
    .venv/bin/python tests/security/atheris_wire.py -max_total_time=1800 \\
        -rss_limit_mb=2048 /tmp/imapd-fuzz-corpus

The property: no input makes any of these raise anything but their
documented error values/exceptions, frames never exceed the limits, and a
parsed command re-encodes to bytes that parse to the same command. The
result of the last long run is recorded in docs/security.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from imapd.accounts.passwd_import import parse_dovecot_passwd
    from imapd.accounts.scram import ScramExchange, ScramFailed, decoy_keys
    from imapd.imap.commands.auth import decode_sasl_base64, parse_plain_message
    from imapd.core.config import Limits
    from imapd.core.errors import ImapError
    from imapd.imap.wire import commands as c
    from imapd.imap.wire.encode_command import encode_command
    from imapd.imap.wire.framer import CommandFrame, FrameError, Framer, NeedContinuation
    from imapd.imap.wire.mutf7 import decode_mutf7
    from imapd.imap.wire.parse import parse_command

LIMITS = Limits(max_line=512, max_literal=256, max_command=2048, max_nesting=8)
COMMAND_TYPES = tuple(c.Command.__args__)  # type: ignore[attr-defined]


def check_frames(data: bytes, cuts: list[int]) -> None:
    framer = Framer(LIMITS)
    position = 0
    for cut in cuts + [len(data)]:
        chunk, position = data[position:position + cut], position + cut
        for event in framer.feed(chunk):
            if isinstance(event, CommandFrame):
                assert len(event.data) <= LIMITS.max_command + LIMITS.max_line + 2
                check_command(event.data)
            else:
                assert isinstance(event, (NeedContinuation, FrameError))
        if position >= len(data):
            break


def check_command(frame: bytes) -> None:
    parsed = parse_command(frame, LIMITS.max_nesting)
    if isinstance(parsed, c.CommandSyntaxError):
        return
    assert isinstance(parsed, COMMAND_TYPES)
    again = parse_command(encode_command(parsed), 64)
    assert again == parsed, (frame, parsed, again)


def check_sasl(data: bytes) -> None:
    try:
        parse_plain_message(decode_sasl_base64(data))
    except ImapError:
        pass
    exchange = ScramExchange(lambda name: decoy_keys(name))
    try:
        exchange.first(data)
        exchange.final(data)
    except ScramFailed:
        pass


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    selector = provider.ConsumeIntInRange(0, 3)
    cuts = [provider.ConsumeIntInRange(1, 64) for _ in range(provider.ConsumeIntInRange(0, 8))]
    payload = provider.ConsumeBytes(provider.remaining_bytes())
    if selector <= 1:
        check_frames(payload, cuts)
    elif selector == 2:
        check_sasl(payload)
        try:
            decode_mutf7(payload)
        except ValueError:
            pass
    else:
        parse_dovecot_passwd(payload.decode("utf-8", "surrogateescape"))


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
