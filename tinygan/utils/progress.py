"""A one-line progress display for long loops, that degrades to log lines off a terminal.

On a terminal the line is redrawn in place (carriage return) at most a few times a
second; when output goes to a file or a pipe (CI, ``nohup``, ``| tee``), one plain line
is written every ``log_every`` steps instead, so logs stay readable.
"""

from __future__ import annotations

import time
from typing import TextIO


def format_seconds(seconds: float) -> str:
    """``3725`` -> ``"1:02:05"``; ``65`` -> ``"1:05"``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Step counter with rate, ETA and a few named values.

    Args:
        total: the step at which the loop ends.
        start: the step it starts from (a resumed run starts later).
        stream: where to write; None: nowhere (the library never prints on its own).
        log_every: off a terminal, write a line every this many steps.
        min_interval: on a terminal, redraw at most this often (seconds).
    """

    def __init__(
        self,
        total: int,
        start: int = 0,
        stream: TextIO | None = None,
        log_every: int = 100,
        min_interval: float = 0.2,
    ) -> None:
        self.total, self.start = total, start
        self.stream = stream
        self.log_every = max(1, log_every)
        self.min_interval = min_interval
        self.is_terminal = hasattr(stream, "isatty") and stream.isatty()
        self._t0 = time.perf_counter()
        self._last_draw = 0.0
        self._width = 0

    def elapsed(self) -> float:
        """Seconds since the display was created."""
        return time.perf_counter() - self._t0

    def line(self, step: int, values: dict[str, float]) -> str:
        """``step 120/2000 (6%) | 4.1 it/s | ETA 7:38 | d_loss 0.231 g_loss 0.412``."""
        done = step - self.start
        rate = done / max(self.elapsed(), 1e-9)
        eta = (self.total - step) / rate if rate > 0 else float("inf")
        eta_text = format_seconds(eta) if eta != float("inf") else "?"
        shown = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        percent = 100.0 * step / max(self.total, 1)
        return (
            f"step {step}/{self.total} ({percent:.0f}%) | {rate:.2f} it/s | "
            f"ETA {eta_text} | {shown}"
        )

    def update(self, step: int, values: dict[str, float]) -> None:
        """Report that ``step`` steps are done, with the current ``values``."""
        if self.stream is None:
            return
        last = step >= self.total
        if self.is_terminal:
            now = time.perf_counter()
            if now - self._last_draw < self.min_interval and not last:
                return
            self._last_draw = now
            text = self.line(step, values)
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
            if last:
                self.stream.write("\n")
        elif step % self.log_every == 0 or last:
            self.stream.write(self.line(step, values) + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """Write a line of its own without breaking the progress line."""
        if self.stream is None:
            return
        if self.is_terminal and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()
