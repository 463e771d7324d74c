"""``imapd status [--data D]``: the sessions of the server running on a
data directory and how many each user has, asked over its admin socket
(``imapd.net.admin``). Exit status 0 with the table, 1 with one line when
no server runs there (or none answers)."""

from __future__ import annotations

import sys
import time
from typing import Any

from imapd.cli_serve import DataOptions, resolve_data_dir


class StatusOptions(DataOptions):
    """``imapd status [--data D]``."""

    synopsis = "[--data D]"


def _age(since: Any, now: float) -> str:
    """How long ago ``since`` (epoch seconds) was, e.g. ``3m07s``."""
    if not isinstance(since, (int, float)):
        return "-"
    seconds = max(0, int(now - since))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def table(rows: list[list[str]]) -> list[str]:
    """Left-aligned columns, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def render(reply: dict[str, Any], now: float) -> list[str]:
    """The status reply as the lines ``imapd status`` prints."""
    sessions = sorted(reply.get("sessions", []),
                      key=lambda s: (s.get("protocol", ""), s.get("user") or "", s.get("peer", "")))
    users: dict[str, int] = reply.get("users", {})
    lines = [f"{len(sessions)} session(s), {len(users)} user(s) logged in"]
    if sessions:
        rows = [["PROTOCOL", "USER", "PEER", "STATE", "FOR"]]
        rows += [[str(s.get("protocol", "?")), str(s.get("user") or "-"), str(s.get("peer", "?")),
                  str(s.get("state", "?")), _age(s.get("since"), now)] for s in sessions]
        lines += [""] + table(rows)
    if users:
        rows = [["USER", "SESSIONS"]] + [[name, str(count)] for name, count in sorted(users.items())]
        lines += [""] + table(rows)
    return lines


def run_status(options: StatusOptions) -> int:
    from imapd.net.admin import ask

    data = resolve_data_dir(options["data"])
    reply = ask(data, {"command": "status"})
    if reply is None:
        print(f"imapd status: no server is running on {data}", file=sys.stderr)
        return 1
    if "error" in reply:
        print(f"imapd status: {reply['error']}", file=sys.stderr)
        return 1
    print("\n".join(render(reply, time.time())))
    return 0
