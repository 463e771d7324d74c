"""Brute-force penalties: increasing delays after failed logins, per client
address and per user name (issue 6).

The design follows Dovecot's ``auth_penalty`` (delay 2 s after the first
failure, doubling per further failure, at most 15 s, forgotten after an hour
without failures), extended to user names so that an attacker spreading
guesses over many addresses still slows down on the account they target.

The delay is applied *before* the password is checked, to every attempt
from a penalised address or for a penalised name, the right password
included. Delaying only failures would let an attacker learn the answer by
timing out early and try many passwords in parallel.

Unknown and known user names are tracked alike, so the penalty never tells
whether an account exists. Keys are SHA-256 digests, so a flood of long
names costs 32 bytes each, and at most ``Limits.auth_penalty_entries`` keys
are kept (the least recently failed are forgotten first).
"""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass
from typing import Callable

from imapd.core.config import Limits


@dataclass(slots=True)
class _Record:
    failures: int
    last_failure: float


def _key(kind: str, value: str) -> bytes:
    return hashlib.sha256(f"{kind}\0{value}".encode("utf-8", "surrogatepass")).digest()


class LoginGuard:
    """Failure counts by address and by user name, on the clock ``now``."""

    def __init__(self, limits: Limits, now: Callable[[], float]) -> None:
        self.initial = limits.auth_penalty_initial
        self.maximum = limits.auth_penalty_max
        self.window = limits.auth_penalty_window
        self.capacity = max(1, limits.auth_penalty_entries)
        self.now = now
        self._records: collections.OrderedDict[bytes, _Record] = collections.OrderedDict()

    def delay_for(self, address: str, user: str) -> float:
        """Seconds to wait before checking this attempt's password."""
        failures = max(self._failures(_key("ip", address)), self._failures(_key("user", user)))
        if failures == 0 or self.initial <= 0:
            return 0.0
        # 2 s, 4 s, 8 s, ... as Dovecot; the exponent is capped so huge
        # counts cannot overflow a float.
        return float(min(self.maximum, self.initial * 2 ** min(failures - 1, 32)))

    def record_failure(self, address: str, user: str) -> None:
        for key in (_key("ip", address), _key("user", user)):
            record = self._records.pop(key, None)
            if record is None or self._expired(record):
                record = _Record(0, 0.0)
            record.failures += 1
            record.last_failure = self.now()
            self._records[key] = record  # most recently failed last
        while len(self._records) > self.capacity:
            self._records.popitem(last=False)

    def record_success(self, address: str, user: str) -> None:
        """A successful login clears the user's count. The address keeps its
        count until it expires: one valid account must not let an attacker
        reset the penalty of the address it guesses other accounts from."""
        self._records.pop(_key("user", user), None)

    def tracked(self) -> int:
        return len(self._records)

    def _failures(self, key: bytes) -> int:
        record = self._records.get(key)
        if record is None:
            return 0
        if self._expired(record):
            del self._records[key]
            return 0
        return record.failures

    def _expired(self, record: _Record) -> bool:
        return self.now() - record.last_failure >= self.window
