"""What a run shows on the console while it trains, when ``verbose`` is off: a progress bar over
the epochs with the latest validation score, then one summary line.

RecBole's configuration dump, the dataset and model printouts and the per-epoch lines still go to
the run's log file; only the console is quiet (``--verbose`` brings them back there).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from dataset_prep.progress import Progress, format_duration


class EpochProgress(Progress):
    """:class:`Progress` over a run's epochs; :meth:`validated` is RecBole's ``callback_fn``
    (called after each validation) and adds the score to the bar or the next plain line."""

    def __init__(
        self,
        model: str,
        epochs: int,
        valid_metric: str,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
    ):
        stream = stream if stream is not None else sys.stdout  # beside the summary and table
        super().__init__(epochs, model, unit="epochs", enabled=enabled, stream=stream)
        self.valid_metric = valid_metric.lower()
        self.score: float | None = None
        # (time, epochs done) at the first validation: what ran before it (loading, MuSiC's
        # stage 1, the first epoch) says nothing of how long the next epochs take
        self._first: tuple[float, int] | None = None

    def validated(self, epoch_idx: int, valid_score: float) -> None:
        if self._first is None:
            self._first = (time.monotonic(), epoch_idx + 1)
        self.score = float(valid_score)
        if self.bar is not None:
            self.bar.set_postfix_str(self._score_text(), refresh=False)
        self.update(epoch_idx + 1 - self.done)  # epochs without validation count too

    def _time_left(self, now: float) -> str | None:
        """The epochs' own pace since the first validation, over the epochs left: an upper
        bound, as early stopping on validation usually ends a run before ``epochs``."""
        if self._first is None or not self._first[1] < self.done < self.total:
            return None
        started, done = self._first
        left = (now - started) / (self.done - done) * (self.total - self.done)
        return f"at most about {format_duration(left)} left (early stopping may end it sooner)"

    def _score_text(self) -> str:
        return "" if self.score is None else f"valid {self.valid_metric} {self.score:.4f}"

    def _amounts(self) -> str:
        score = self._score_text()
        return super()._amounts() + (f", {score}" if score else "")


def summary_line(model: str, result: dict, valid_metric: str, seconds: float) -> str:
    """``TargetMF: best epoch 7, valid rmse 0.9312, test rmse 0.9540, 3.2 s``."""
    key = valid_metric.lower()
    valid = (result.get("best_valid_result") or {}).get(key)
    test = (result.get("test_result") or {}).get(key)
    epoch = result.get("run", {}).get("best_epoch")
    parts = [f"best epoch {epoch}" if epoch is not None else "no checkpoint epoch"]
    parts.append(f"valid {key} {valid:.4f}" if valid is not None else "no validation users")
    if test is not None:
        parts.append(f"test {key} {test:.4f}")
    parts.append(f"{seconds:.1f} s")
    return f"{model}: " + ", ".join(parts)
