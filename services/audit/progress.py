"""A small progress line on stderr: count, rate and ETA, redrawn at most once per interval."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Progress:
    """`advance(n)` as work is done; `finish()` prints the last line and returns the elapsed seconds.

    On a terminal the line is redrawn in place; otherwise (logs, CI) one line per interval.
    An interval of 0 prints nothing.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "events",
        every: float = 1.0,
        stream: TextIO | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.every = every
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self.started = time.perf_counter()
        self._last_draw = self.started
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn_at = -1

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        elapsed = self.elapsed
        return self.count / elapsed if elapsed > 0 else 0.0

    def advance(self, count: int = 1) -> None:
        self.count += count
        now = time.perf_counter()
        if self.every > 0 and now - self._last_draw >= self.every:
            self._last_draw = now
            self._draw(final=False)

    def line(self) -> str:
        rate = self.rate
        text = f"[{self.label}] {self.count:,}"
        if self.total:
            text += f"/{self.total:,} {self.unit} {100 * self.count / self.total:5.1f}%"
        else:
            text += f" {self.unit}"
        text += f"  {rate:,.0f} {self.unit}/s  {duration(self.elapsed)}"
        if self.total and rate > 0 and self.count < self.total:
            text += f"  ETA {duration((self.total - self.count) / rate)}"
        return text

    def _draw(self, *, final: bool) -> None:
        text = self.line()
        if self._tty:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._drawn_at = self.count

    def finish(self) -> float:
        elapsed = self.elapsed
        if self.every > 0 and (self._tty or self._drawn_at != self.count):
            self._draw(final=True)
        return elapsed
