"""Progress bars driven by the ``[progress] stage i/n`` report lines of the WorkChains."""

from __future__ import annotations

import logging
import re

from tqdm import tqdm

PROGRESS_PATTERN = re.compile(r"\[progress\] (?P<stage>\S+) (?P<done>\d+)/(?P<total>\d+)")


class _DropProgress(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "[progress]" not in record.getMessage()


class ProgressBars(logging.Handler):
    """A logging handler that keeps one tqdm bar per stage; use as a context manager."""

    def __init__(self, logger_name: str = "aiida") -> None:
        super().__init__(level=logging.DEBUG)
        self._logger = logging.getLogger(logger_name)
        self._bars: dict[str, tqdm] = {}
        self._filter = _DropProgress()

    def emit(self, record: logging.LogRecord) -> None:
        match = PROGRESS_PATTERN.search(record.getMessage())
        if not match:
            return
        stage, done, total = match["stage"], int(match["done"]), int(match["total"])
        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total, desc=f"{stage:>22s}", unit="step", leave=True)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    def __enter__(self) -> "ProgressBars":
        for handler in self._logger.handlers:
            handler.addFilter(self._filter)
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self._logger.removeHandler(self)
        for handler in self._logger.handlers:
            handler.removeFilter(self._filter)
        for bar in self._bars.values():
            bar.close()
