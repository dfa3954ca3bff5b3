"""junit.xml for one run, written with junitparser (a kept library, not a hand-made writer).

Console tails carry ESC colour codes and NUL bytes that XML 1.0 cannot hold: every text goes
through xml_text() first. The counts are computed from the test cases after every extra case
(kernel_log_clean, the run's own error) is added, so they always match the file.
`run` is a results.RunResults, read by its fields and never imported: results.py writes
junit.xml through this module, and an import back would close a circle.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from typing import Any

from junitparser import Error, Failure, Skipped, TestCase, TestSuite

# ANSI escape sequences (colours, cursor moves) from a serial console: noise in a CI report.
ANSI_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
# Characters XML 1.0 forbids (everything below 0x20 but tab, LF, CR; lone surrogates; FFFE/FFFF).
XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: Any) -> str:
    """value as text XML 1.0 can hold: ANSI sequences dropped, other control bytes as \\xNN."""
    text = ANSI_SEQUENCE.sub("", "" if value is None else str(value))
    return XML_INVALID.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _first_line(message: str, default: str) -> str:
    lines = message.splitlines()
    return xml_text(lines[0]) if lines else default


def _timestamp(started: str) -> str:
    # JUnit's timestamp is ISO 8601 without a zone; results.json's `started` may carry one
    try:
        moment = datetime.fromisoformat(started) if started else datetime.now(timezone.utc)
    except ValueError:
        moment = datetime.now(timezone.utc)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds")


def _result(kind: type, message: str, text: str):
    entry = kind(message)
    entry.text = xml_text(text)
    return entry


def junit_suite(run: Any) -> TestSuite:
    suite = TestSuite(xml_text(f"zstest.{run.suite or 'suite'}"))
    suite.timestamp = _timestamp(run.started)
    suite.hostname = xml_text(socket.gethostname())
    for key, value in (("accel", (run.accel or {}).get("name", "")),
                       ("kernel", (run.kernel or {}).get("uname", "")),
                       ("boot_to_ssh_s", run.boot_to_ssh_s),
                       ("cause", run.cause or run.blame())):
        suite.add_property(key, xml_text(value))
    for p in (run.coverage or {}).get("patches") or []:
        # --coverage: how much of each patch the tests ran, for CI dashboards
        suite.add_property(f"coverage.patch{p.get('index')}",
                           xml_text(f"{p.get('executed')}/{p.get('executable')}"))
    cases = []
    for t in run.tests:
        classname, _, name = t.name.rpartition("::")
        case = TestCase(xml_text(name or t.name), xml_text(classname.replace("/", ".") or "zstest"),
                        round(float(t.duration_s or 0), 3))
        text = t.message + "".join("\n\n" + str(s.get("text", "")) for s in t.splats)
        if t.status == "failed":
            case.result = [_result(Failure, _first_line(t.message, "failed"), text)]
        elif t.status in ("error", "interrupted"):
            case.result = [_result(Error, _first_line(t.message, t.status), text)]
        elif t.status == "skipped":
            case.result = [Skipped(xml_text(t.message))]
        if len(t.runs) > 1:
            case.system_out = xml_text(f"passed {t.passes} of {len(t.runs)} runs: {' '.join(t.runs)}")
        cases.append(case)
    if run.splats:
        brief = f"[{run.splats[0].get('kind', 'splat')}] {run.splats[0].get('title', '')}".strip()
        case = TestCase("kernel_log_clean", "zstest.console", 0.0)
        case.result = [_result(Failure, xml_text(brief),
                               "\n\n".join(str(s.get("text", "")) for s in run.splats))]
        cases.append(case)
    if run.status in ("error", "interrupted") and (run.message or not run.tests):
        message = run.message or f"the run ended with status {run.status}"
        case = TestCase(run.status, "zstest.run", 0.0)
        case.result = [_result(Error, _first_line(message, run.status), message)]
        cases.append(case)
    for case in cases:
        suite.add_testcase(case)
    # counts from the cases actually in the file, extras included
    suite.update_statistics()
    suite.time = round(float(run.duration_s or 0), 3)
    return suite


def junit_xml_text(run: Any) -> str:
    """The whole junit.xml document for run, well-formed whatever its texts hold."""
    root = junit_suite(run)._elem
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
