"""The IMAP load generator of the benchmark suite (issue 8).

Drive N concurrent asyncio clients against any IMAP server with a checked,
realistic mix (``python -m bench.load --help``)::

    from bench.load import LoadConfig, Target, prepare_mailboxes, run_load
    target = Target("127.0.0.1", 1143, "bench", "secret")
    await prepare_mailboxes(target, "bench", count=10, messages=100)
    result = await run_load(LoadConfig(target, clients=10, seconds=30))

Modules: ``wire`` (response grammar), ``client`` (one connection),
``checks`` (what a correct answer is), ``workload`` (one simulated client),
``stats`` (percentiles), ``runner`` (N clients, a measurement window).
"""

from __future__ import annotations

from bench.load.runner import (
    MIX, MODES, LoadConfig, LoadResult, append_pipelined, format_result, login,
    mailbox_name, prepare_mailboxes, run_load,
)
from bench.load.workload import Target

__all__ = [
    "MIX", "MODES", "LoadConfig", "LoadResult", "Target", "append_pipelined", "format_result",
    "login", "mailbox_name", "prepare_mailboxes", "run_load",
]
