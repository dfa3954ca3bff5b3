"""What the watch's page and cell fan-out use of the running bot (bot.Watcher), as a protocol:
the bot calls them, so importing bot back would close an import circle."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

from .execute import SeriesRun
from .state import SeriesRow, WatchState


class WatcherView(Protocol):
    cfg: Any                 # bot.WatchConfig
    state: WatchState
    echo: Callable[[str], None]

    def say(self, text: str) -> None: ...

    def series_dir(self, key: str) -> Path: ...

    def finish(self, row: SeriesRow, run: SeriesRun) -> None: ...
