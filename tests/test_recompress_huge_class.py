"""huge_class_size read from zsmalloc's debugfs classes file (the recompression suite's
threshold boundary, issue 28), on recorded guest output.

classes-6.1.txt: test_perf_suite's recording (6.1.192, x86_64): 3264 is the largest class whose
zspage holds more than one object on more than one page, so 3264 - (8 - 1). classes-6.12.txt:
6.12.118 x86_64 (`base`, a fresh zram device; zspages chain up to 8 pages), from
test_threshold_from_huge_class_size_refused's log of 2026-12-07: 3632 - 7; that kernel refused
`threshold=3625` and took 3624.
"""

from pathlib import Path

from zstest.suites.test_zram_recompress import huge_class_size

DATA = Path(__file__).parent / "data" / "perf"


def test_huge_class_size_6_1():
    text = (DATA / "classes-6.1.txt").read_text()
    assert huge_class_size(text, 4096, 8) == 3257
    assert huge_class_size(text, 4096, 4) == 3261      # a 32-bit kernel's handle


def test_huge_class_size_6_12():
    assert huge_class_size((DATA / "classes-6.12.txt").read_text(), 4096, 8) == 3625
