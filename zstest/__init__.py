"""zstest: validate zsmalloc/zram kernel patch series end to end."""

__version__ = "0.1.0"
