"""Progress of the WorkChains, driven by their ``[progress] stage i/n`` report lines.

On a terminal: one tqdm bar per stage. Elsewhere (a pipe, a log file, CI): plain lines, one per
10 % of a stage and one at its end, with no carriage returns or escape codes.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

from tqdm import tqdm

PROGRESS_PATTERN = re.compile(r"\[progress\] (?P<stage>\S+) (?P<done>\d+)/(?P<total>\d+)")
PLAIN_STEP_PERCENT = 10  #: without a terminal, a line every this many percent of a stage


class _DropProgress(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "[progress]" not in record.getMessage()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ProgressBars(logging.Handler):
    """A logging handler that shows the progress of each stage; use as a context manager.

    ``stream``: where progress goes (default: standard error). ``bars``: tqdm bars (True) or plain
    lines (False); default: bars only when ``stream`` is a terminal.
    """

    def __init__(self, logger_name: str = "aiida", stream: TextIO | None = None, bars: bool | None = None) -> None:
        super().__init__(level=logging.DEBUG)
        self._logger = logging.getLogger(logger_name)
        self._stream = stream if stream is not None else sys.stderr
        self._use_bars = _is_terminal(self._stream) if bars is None else bars
        self._bars: dict[str, tqdm] = {}
        self._printed_step: dict[str, int] = {}  # plain mode: last 10 % step printed per stage
        self._filter = _DropProgress()

    def emit(self, record: logging.LogRecord) -> None:
        match = PROGRESS_PATTERN.search(record.getMessage())
        if not match:
            return
        stage, done, total = match["stage"], int(match["done"]), int(match["total"])
        if self._use_bars:
            self._update_bar(stage, done, total)
        else:
            self._print_line(stage, done, total)

    def _update_bar(self, stage: str, done: int, total: int) -> None:
        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total, desc=f"{stage:>22s}", unit="step", leave=True,
                                           file=self._stream)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    def _print_line(self, stage: str, done: int, total: int) -> None:
        step = 100 // PLAIN_STEP_PERCENT if done >= total else (100 * done // max(total, 1)) // PLAIN_STEP_PERCENT
        if step <= self._printed_step.get(stage, 0):
            return
        self._printed_step[stage] = step
        percent = 100 * done // max(total, 1)
        self._stream.write(f"{stage:>22s}: {done}/{total} ({percent} %){' done' if done >= total else ''}\n")
        self._stream.flush()

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
