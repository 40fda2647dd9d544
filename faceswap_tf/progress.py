"""A progress line with rate and ETA: redrawn in place on a terminal, a line every few
seconds in a log (CI, a pipe)."""

import sys
import time


class Progress:
    def __init__(self, total: int | None, unit: str, stream=sys.stderr, log_every: float = 10.0):
        self.total, self.unit, self.stream = total, unit, stream
        self.count = 0
        self.start = time.perf_counter()
        self._tty = hasattr(stream, "isatty") and stream.isatty()
        self._interval = 0.25 if self._tty else log_every
        self._last = self.start
        self._drawn = False

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def rate(self) -> float:
        return self.count / max(self.elapsed, 1e-9)

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if now - self._last >= self._interval:
            self._last = now
            self._draw()

    def close(self) -> None:
        """Draws the final state, unless the run was too short to have shown any."""
        if self._drawn:
            self._draw()
            if self._tty:
                self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        line = f"{self.count}"
        if self.total:
            done = min(self.count / self.total, 1.0)
            bar = "#" * int(done * 20)
            line = f"[{bar:<20}] {self.count}/{self.total}"
        line += f" {self.unit}  {self.rate:.1f} {self.unit}/s"
        if self.total and self.rate > 0 and self.count < self.total:
            line += f"  ETA {clock((self.total - self.count) / self.rate)}"
        self.stream.write(("\r" + line + "\033[K") if self._tty else line + "\n")
        self._drawn = True
        self.stream.flush()


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
