"""Progress of a long step: a tqdm bar on a terminal, plain lines everywhere else.

A bar redraws itself many times a second; in a log file or a CI log every redraw becomes a line.
So :class:`Progress` draws a tqdm bar only when its stream is a terminal, and otherwise writes
one plain line each time another ``PLAIN_EVERY_PERCENT`` % is done or ``PLAIN_EVERY_SECONDS``
have passed, whichever comes first, with the time taken and an estimate of the time left.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

PLAIN_EVERY_PERCENT = 10
PLAIN_EVERY_SECONDS = 60.0
NO_PROGRESS_HELP = (
    f"no progress output (a bar on a terminal, else a line every {PLAIN_EVERY_PERCENT} %% or "
    f"{PLAIN_EVERY_SECONDS:.0f} s)"
)


def format_duration(seconds: float) -> str:
    """``42s``, ``3 min 05 s``, ``2 h 07 min``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """``update(n)`` as work is done, ``close()`` at the end (or use it in a ``with``).

    ``total`` counts ``unit``s (rows, items, bytes with ``unit_scale``); ``enabled=False`` shows
    nothing at all. ``stream`` defaults to standard error, where tqdm draws too.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "it",
        *,
        enabled: bool = True,
        unit_scale: bool = False,
        stream: TextIO | None = None,
        every_percent: float = PLAIN_EVERY_PERCENT,
        every_seconds: float = PLAIN_EVERY_SECONDS,
    ):
        self.total, self.desc, self.unit, self.unit_scale = total, desc, unit, unit_scale
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.every_percent, self.every_seconds = every_percent, every_seconds
        self.done = 0
        self.bar = None
        self._started = self._last_time = time.monotonic()
        self._last_percent = 0.0
        self._lines_at = 0  # `done` when the last plain line was written
        if enabled and _is_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                unit_scale=unit_scale,
                file=self.stream,
                unit_divisor=1024 if unit_scale else 1000,
                dynamic_ncols=True,
                leave=False,
            )

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and n:
            now = time.monotonic()
            percent = self._percent()
            if (
                percent - self._last_percent >= self.every_percent
                or now - self._last_time >= self.every_seconds
            ):
                self._last_percent, self._last_time = percent, now
                self._write_line(now, percent)

    def _percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def _amounts(self) -> str:
        """``4,500/10,000 rows``, or with ``unit_scale`` ``1.5 MiB/12.0 MiB``."""
        if not self.unit_scale:
            return f"{self.done:,}/{self.total:,} {self.unit}"
        return f"{_binary(self.done)}{self.unit}/{_binary(self.total)}{self.unit}"

    def _write_line(self, now: float, percent: float) -> None:
        elapsed = now - self._started
        line = f"{self.desc}: {percent:.0f}% ({self._amounts()}), {format_duration(elapsed)} so far"
        left = self._time_left(now)
        if left:
            line += f", {left}"
        self.stream.write(line + "\n")
        self.stream.flush()
        self._lines_at = self.done

    def _time_left(self, now: float) -> str | None:
        """``about 3 min left``: the rate so far over what is left (None when done or idle)."""
        if not 0 < self.done < self.total:
            return None
        left = (now - self._started) * (self.total - self.done) / self.done
        return f"about {format_duration(left)} left"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled and self.done and self._lines_at != self.done:
            self._write_line(time.monotonic(), self._percent())  # the last line: where it ended
        self.enabled = False  # closed: nothing more

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quiet_library_bars(stream: TextIO | None = None) -> None:
    """Off a terminal, turn off the bars transformers and huggingface_hub draw while loading
    or downloading a model (they would flood a log file as ours would)."""
    if _is_terminal(stream if stream is not None else sys.stderr):
        return
    try:
        import huggingface_hub.utils
        import transformers.utils.logging
    except ImportError:  # pragma: no cover
        return
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def _binary(n: float) -> str:
    for prefix in ("", "Ki", "Mi", "Gi"):
        if n < 1024 or prefix == "Gi":
            return f"{n:.0f} " if not prefix else f"{n:.1f} {prefix}"
        n /= 1024
    return f"{n:.1f} Gi"  # pragma: no cover
