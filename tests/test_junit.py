"""junit.xml (zstest/junit.py): always well-formed, counts that match its cases, timestamp and
hostname. Checked with two real parsers: junitparser reading it back, and xml.etree."""

from __future__ import annotations

import shutil
import socket
import xml.etree.ElementTree as ET

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from conftest import REPO
from zstest.results import TestResult, load_results, write_results

DATA = REPO / "tests" / "data" / "decode"
# What a serial console's tail holds: colour codes, a NUL from a half-written line, a bell.
CONSOLE_TAIL = "\x1b[0;32m[  OK  ]\x1b[0m Started\x00 zram\x07\x1b(B\nlast line\r\n"


def read_back(path):
    ET.parse(path)                       # well-formed XML 1.0, or this raises
    xml = JUnitXml.fromfile(str(path))
    suites = [xml] if xml._tag == "testsuite" else list(xml)
    assert len(suites) == 1
    return suites[0]


def counted(suite, kind) -> int:
    return sum(1 for case in suite for entry in case.result if isinstance(entry, kind))


@pytest.mark.parametrize("recorded", ["panic-sysrq", "failure-probe", "failed-boot", "demo-v1-migration"])
def test_recorded_runs_give_wellformed_junit_whose_counts_match(tmp_path, recorded):
    shutil.copytree(DATA / recorded, tmp_path / "r")
    run = load_results(tmp_path / "r")
    # a failed test whose message ends with the console's tail, as the runner writes it
    run.tests.append(TestResult("test_x.py::test_tail", "failed", duration_s=1.0,
                                message="guest lost\n" + CONSOLE_TAIL,
                                splats=[{"kind": "bug", "title": "BUG\x1b[m", "text": CONSOLE_TAIL}]))
    run.tests.append(TestResult("test_x.py::test_skip\x00", "skipped", message="no \x1bzstd"))
    run.splats.append({"kind": "warning", "title": "WARNING \x00", "text": CONSOLE_TAIL})
    write_results(tmp_path / "r", run)
    path = tmp_path / "r" / "junit.xml"
    raw = path.read_text()
    assert "\x1b" not in raw and "\x00" not in raw and "\x07" not in raw
    suite = read_back(path)
    cases = list(suite)
    assert suite.tests == len(cases) >= len(run.tests) + 1          # kernel_log_clean counted
    assert suite.failures == counted(suite, Failure)
    assert suite.errors == counted(suite, Error)
    assert suite.skipped == counted(suite, Skipped)
    assert "kernel_log_clean" in [c.name for c in cases]
    assert suite.hostname == socket.gethostname()
    assert suite.timestamp and suite.timestamp[:4].isdigit() and "T" in suite.timestamp
    tail = next(c for c in cases if c.name == "test_tail")
    assert "[  OK  ] Started\\x00 zram\\x07" in tail.result[0].text
    root = ET.parse(path).getroot()
    assert root.get("tests") == str(len(root.findall("testcase")))


def test_a_run_error_with_no_test_is_one_counted_case(tmp_path):
    shutil.copytree(DATA / "failed-boot", tmp_path / "r")
    run = load_results(tmp_path / "r")
    run.message = ""
    write_results(tmp_path / "r", run)
    suite = read_back(tmp_path / "r" / "junit.xml")
    assert (suite.tests, suite.errors) == (1, 1)
    assert list(suite)[0].classname == "zstest.run"
