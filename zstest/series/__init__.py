"""Series intake: read a patch series from any source and show it."""

from .lore import DEFAULT_LORE_URL, fetch_thread
from .model import Patch, Series
from .show import format_series
from .sources import load_series

__all__ = ["DEFAULT_LORE_URL", "Patch", "Series", "fetch_thread", "format_series", "load_series"]
