"""Helpers shared by the guest suites: metric parsers, the data mix tools, a zram device."""
