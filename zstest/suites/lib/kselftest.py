"""Parse kselftest output: TAP ("ok 1 name", "not ok 2 name # SKIP why") and the zram
scripts' own lines ("zram01 : [PASS]", "FAIL can't set ...")."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List

_TAP = re.compile(r"^\s*(not ok|ok)\s+(\d+)\s*-?\s*([^#]*?)\s*(?:#\s*(SKIP|TODO|XFAIL)\b\s*(.*))?$",
                  re.IGNORECASE)
_VERDICT = re.compile(r"^\s*(\S+)\s*:\s*\[(PASS|FAIL|SKIP)\]\s*$")
_FAIL_LINE = re.compile(r"^\s*FAIL\b\s*(.*)$")


@dataclass
class SelftestCase:
    name: str
    status: str        # passed / failed / skipped
    note: str = ""


@dataclass
class SelftestReport:
    cases: List[SelftestCase] = field(default_factory=list)
    failures: List[str] = field(default_factory=list)    # "FAIL ..." lines, with or without a verdict

    @property
    def passed(self) -> bool:
        return bool(self.cases) and not self.failures and \
            all(c.status != "failed" for c in self.cases)

    def as_dict(self) -> dict:
        return {"cases": {c.name: c.status for c in self.cases}, "failures": self.failures}


def parse_selftest_output(text: str) -> SelftestReport:
    report = SelftestReport()
    for line in text.splitlines():
        m = _VERDICT.match(line)
        if m:
            status = {"PASS": "passed", "FAIL": "failed", "SKIP": "skipped"}[m.group(2)]
            report.cases.append(SelftestCase(m.group(1), status))
            continue
        m = _TAP.match(line)
        if m:
            directive = (m.group(4) or "").upper()
            status = "skipped" if directive == "SKIP" else \
                "passed" if m.group(1).lower() == "ok" or directive in ("TODO", "XFAIL") else "failed"
            report.cases.append(SelftestCase(m.group(3) or f"test {m.group(2)}", status,
                                             m.group(5) or ""))
            continue
        m = _FAIL_LINE.match(line)
        if m:
            report.failures.append(line.strip())
    return report
