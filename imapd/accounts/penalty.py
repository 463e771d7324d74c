"""Brute-force penalties: increasing delays after failed logins, per client
address and per user name (issue 6; policy revised in issue 13).

The policy follows Dovecot's ``auth_penalty``:

* a failure delays the next attempts from the same address and for the
  same user name by 2 s, doubling per further failure, at most 15 s;
* a penalty decays: a key whose last failure is ``Limits.auth_penalty_window``
  seconds old (default 30 s, Dovecot's AUTH_PENALTY_TIMEOUT of 2+4+8+15 s)
  is forgotten, so one mistyped password no longer slows an address for an
  hour;
* a successful login clears both its address and its user name. Many users
  share one address (NAT, a webmail front end, a proxy): one user's typos
  must not make everybody else behind it wait 15 s for every login.

Extended beyond Dovecot to user names, so that an attacker spreading
guesses over many addresses still slows down on the account it targets;
a success for *another* account (an attacker's own, from the guessing
address) clears the address but never the targeted name, whose count keeps
growing with every wrong guess.

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
        """A successful login clears the user's count and its address's
        (Dovecot resets the address too): the others behind a shared
        address stop paying for one user's typos."""
        self._records.pop(_key("user", user), None)
        self._records.pop(_key("ip", address), None)

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
