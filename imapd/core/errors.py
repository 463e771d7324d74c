"""The one exception type handlers raise to answer a command with NO or BAD.

Handlers never build response bytes; they raise ``ImapError`` and the
dispatcher turns it into a tagged ``NO``/``BAD`` with the response code.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    NO = "NO"
    BAD = "BAD"


class ImapError(Exception):
    """A command failed in a way the client should be told about.

    ``code`` is a response code atom such as ``"TRYCREATE"`` or
    ``"NONEXISTENT"`` (RFC 3501 §7.1, RFC 5530), ``code_args`` its arguments.
    """

    def __init__(
        self,
        kind: ErrorKind,
        text: str,
        code: str | None = None,
        code_args: tuple[object, ...] = (),
    ) -> None:
        super().__init__(text)
        self.kind = kind
        self.text = text
        self.code = code
        self.code_args = code_args

    @classmethod
    def no(cls, text: str, code: str | None = None, *args: object) -> ImapError:
        return cls(ErrorKind.NO, text, code, tuple(args))

    @classmethod
    def bad(cls, text: str, code: str | None = None, *args: object) -> ImapError:
        return cls(ErrorKind.BAD, text, code, tuple(args))
