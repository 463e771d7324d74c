"""The import's progress bar (tqdm) and its notes.

The bar is drawn only when the stream is a terminal: in a pipe, a log or a
test there is no bar, only the per-item problem lines and the summary.
While a bar is drawn, problem lines go through ``tqdm.write`` so they
appear above it instead of tearing it."""

from __future__ import annotations

from typing import Any, TextIO


def human_bytes(size: float) -> str:
    """``size`` with a binary unit (B, KiB, MiB, GiB, TiB), for people."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


class Progress:
    """Counts messages (imported, skipped or failed) against ``total``, with
    bytes imported; a tqdm bar on ``stream`` when ``stream`` is a TTY (or
    when ``bar`` says so)."""

    def __init__(self, total: int, stream: TextIO, bar: bool | None = None,
                 label: str = "import") -> None:
        self.stream = stream
        self.size = 0
        self._bar: Any = None
        if bar if bar is not None else _is_tty(stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="msg", file=stream, dynamic_ncols=True,
                             smoothing=0.1, desc=label)

    @property
    def drawing(self) -> bool:
        return self._bar is not None

    def advance(self, messages: int, size: int = 0) -> None:
        self.size += size
        if self._bar is not None:
            if size:
                self._bar.set_postfix_str(human_bytes(self.size), refresh=False)
            self._bar.update(messages)

    def note(self, line: str) -> None:
        """One line for the operator (a problem with one item)."""
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
