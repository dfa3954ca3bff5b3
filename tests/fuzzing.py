"""What every tests/test_fuzz_*.py shares: the hypothesis profile, the exit-code property and an
in-process CLI run (issue 26, "close the class").

CI: derandomized (the same examples every run), no example database, no deadline (a loaded
host is slow, the linear-time tests measure time themselves), a bounded number of examples.
bench/bench_fuzz.py runs the same tests longer: ZSTEST_FUZZ_SCALE multiplies every
max_examples and ZSTEST_FUZZ_RANDOM=1 draws new examples each run.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal

from hypothesis import HealthCheck, settings

from zstest.errors import ZstestError

SCALE = float(os.environ.get("ZSTEST_FUZZ_SCALE", "1"))
RANDOM = os.environ.get("ZSTEST_FUZZ_RANDOM") == "1"
# errors.py: 0 pass, 1 kernel to blame, 2 bad input, 3 apply, 4 build, 5 boot, 6 prerequisites,
# 130 interrupted. A parser of outside input may only say 0 or 2 (bad input).
DOCUMENTED_EXITS = {0, 1, 2, 3, 4, 5, 6, 130}


def fuzz(examples: int):
    """The hypothesis settings of one fuzz test: examples in CI, times SCALE in the benchmark."""
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None,
                    derandomize=not RANDOM, database=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))


def assert_one_sentence(err: ZstestError, codes=frozenset({2})) -> None:
    """A user error: its documented code, one non-empty line, printable."""
    assert err.exit_code in codes, (err.exit_code, err.message)
    text = err.message
    assert text.strip() and "\n" not in text and "\r" not in text, repr(text)
    assert "\x1b" not in text, repr(text)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """zstest.cli.main(argv) in this process: (exit code, stdout, stderr). Anything but a
    handled exit (a traceback) propagates and fails the test. Signal handlers are restored."""
    from zstest import cli
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    out, err = io.StringIO(), io.StringIO()
    old = os.environ.get("_ZSTEST_NO_EXIT")
    os.environ["_ZSTEST_NO_EXIT"] = "1"
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
        if old is None:
            os.environ.pop("_ZSTEST_NO_EXIT", None)
        else:
            os.environ["_ZSTEST_NO_EXIT"] = old
    return code, out.getvalue(), err.getvalue()


def assert_cli_ok_or_one_sentence(code: int, stderr: str, codes=frozenset({0, 2})) -> None:
    assert code in codes, (code, stderr)
    if code != 0:
        lines = stderr.strip().splitlines()
        assert lines and lines[0].startswith("zstest: error: "), stderr
        assert "Traceback" not in stderr, stderr


def files_under(root) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}
