"""The pytest plugin that connects guest suites to a booted guest.

It gives tests the fixtures `guest`, `console`, `build_manifest` (the build's
manifests.BuildManifest), `build_dir` (where the build is now), `build_info` (build.json as
read), `kernel_config`, `page_size` and `record`; marks each test's start and end in the kernel log (so the
console log shows which test was running when a splat appeared); fails a test
during which the kernel logged a splat; and turns pytest's reports into
zstest TestResults.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shlex
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from ..errors import BootFailed
from ..manifests import BuildManifest
from ..results import TestResult
from ..splats import kind_words
from ..vm.ssh import KernelCrashed

MARK_TIMEOUT_S = 10.0
PLUGIN_KEY = pytest.StashKey["GuestSuitePlugin"]()


class GuestCommandFailed(AssertionError):
    """A command the test required to succeed exited non-zero in the guest."""


def splat_to_dict(splat: Any) -> Dict[str, Any]:
    if dataclasses.is_dataclass(splat):
        return dataclasses.asdict(splat)
    return dict(splat)


class LoggedGuest:
    """The guest as tests see it: every command and its output go to the test's log."""

    def __init__(self, guest, plugin: "GuestSuitePlugin"):
        self._guest = guest
        self._plugin = plugin

    def run(self, cmd: str, timeout: Optional[float] = None, check: bool = False):
        timeout = timeout or self._plugin.default_timeout
        self._plugin.log(f"$ {cmd}")
        to_log = _OutputToLog(self._plugin)
        try:
            # streamed: the log has all of it, the result only its tail (Guest.OUTPUT_TAIL_BYTES)
            result = self._guest.run(cmd, timeout=timeout, check=False, on_output=to_log.add)
        finally:
            to_log.flush()
        self._plugin.log(f"[exit {result.exit_status}, {result.duration_s:.2f} s]")
        if check and result.exit_status != 0:
            oom = getattr(result, "oom_kill", "")
            raise GuestCommandFailed(
                (f"killed by the kernel's OOM killer: {oom} (`{cmd}`)\n" if oom else "") +
                f"`{cmd}` exited with {result.exit_status} in the guest\n"
                f"stdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-2000:]}")
        return result

    def check(self, cmd: str, timeout: Optional[float] = None) -> str:
        """Run cmd, require exit 0, return its stdout."""
        return self.run(cmd, timeout=timeout, check=True).stdout

    def read(self, path: str) -> str:
        return self.check(f"cat {shlex.quote(path)}")

    def exists(self, path: str) -> bool:
        return self.run(f"test -e {shlex.quote(path)}").exit_status == 0

    def __getattr__(self, name):
        return getattr(self._guest, name)


class _OutputToLog:
    """A guest command's output into the test's log as it arrives, line by line: stdout
    indented, stderr after "! " (a line longer than LINE_MAX bytes is cut)."""

    PREFIX = {"stdout": "  ", "stderr": "! "}
    LINE_MAX = 64 << 10

    def __init__(self, plugin: "GuestSuitePlugin"):
        self._plugin = plugin
        self._pending = {"stdout": b"", "stderr": b""}

    def add(self, name: str, chunk: bytes) -> None:
        lines = (self._pending[name] + chunk).split(b"\n")
        rest = lines.pop()
        if len(rest) > self.LINE_MAX:
            lines.append(rest)
            rest = b""
        self._pending[name] = rest
        self._write(name, lines)

    def flush(self) -> None:
        for name, rest in self._pending.items():
            if rest:
                self._write(name, [rest])
            self._pending[name] = b""

    def _write(self, name: str, lines) -> None:
        if lines:
            prefix = self.PREFIX[name]
            self._plugin.log("".join(prefix + line.decode("utf-8", "replace") + "\n"
                                     for line in lines))


class Recorder:
    """What a test hands to results.json besides pass/fail: metrics and facts."""

    def __init__(self):
        self.metrics: Dict[str, Any] = {}
        self.details: Dict[str, Any] = {}

    def metric(self, **kw) -> None:
        """record.metric(before={...}, after={...}) or any named snapshot."""
        self.metrics.update(kw)

    def detail(self, key: str, value: Any) -> None:
        self.details[key] = value

    def perf(self, name: str, value: float, unit: str, better: str, exact: bool = False) -> None:
        """A performance number: metrics.perf[name] = {value, unit, better, exact}.

        better is "higher" or "lower"; exact=True for numbers computed from identical data
        (memory use), which runs of the same kernel must reproduce to the unit.
        """
        if better not in ("higher", "lower"):
            raise ValueError(f"perf metric {name}: better must be 'higher' or 'lower', not {better!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"perf metric {name}: {value} is not a finite number")
        self.metrics.setdefault("perf", {})[name] = {
            "value": value, "unit": str(unit), "better": better, "exact": bool(exact)}


class GuestSuitePlugin:
    def __init__(self, guest, *, results_dir: Path, build: BuildManifest, build_dir: Path,
                 kernel_config: Dict[str, str], default_timeout: float = 300.0,
                 tests_dir_name: str = "tests"):
        self._raw_guest = guest
        self.results_dir = Path(results_dir)
        # underscored: an instance attribute named like a fixture hides the fixture from pytest
        self._build = build
        self._build_dir = Path(build_dir)    # where it is now; build.json's is where it was built
        self._kernel_config = kernel_config
        self.default_timeout = default_timeout
        self.tests_dir = self.results_dir / tests_dir_name
        self.tests_dir.mkdir(parents=True, exist_ok=True)
        self.results: List[TestResult] = []
        self.guest_lost: Optional[BaseException] = None
        self.collected: List[str] = []       # node ids selected to run, in order
        self._current: Optional[Dict[str, Any]] = None
        self._logged = LoggedGuest(guest, self)
        self._boot_coverage_kept = False     # --coverage: what booting ran, before any reset

    # -- the per-test log -------------------------------------------------
    def log(self, text: str) -> None:
        if self._current is None:
            return
        try:
            with open(self._current["log_path"], "a") as fh:
                fh.write(text if text.endswith("\n") else text + "\n")
        except OSError as exc:   # a full disk: the run reports it once, at its end
            self._current["log_error"] = exc

    # -- the objects the fixtures below hand to tests -----------------------
    @property
    def logged_guest(self) -> LoggedGuest:
        return self._logged

    @property
    def raw_guest(self):
        return self._raw_guest

    @property
    def manifest(self) -> BuildManifest:
        return self._build

    @property
    def local_build_dir(self) -> Path:
        return self._build_dir

    @property
    def config_options(self) -> Dict[str, str]:
        return self._kernel_config

    @property
    def recorder(self) -> Recorder:
        return self._current["recorder"] if self._current else Recorder()

    def pytest_configure(self, config):
        config.stash[PLUGIN_KEY] = self

    def pytest_collection_finish(self, session):
        self.collected = [item.nodeid for item in session.items]

    def not_run(self) -> List[str]:
        """Selected tests that never started (the guest was lost before them)."""
        started = {r.name for r in self.results}
        if self._current is not None:
            started.add(self._current["nodeid"])
        return [n for n in self.collected if n not in started]

    def unfinished_result(self, status: str, why: str) -> Optional[TestResult]:
        """The test that was running when the run was stopped (Ctrl-C), with what it left."""
        cur = self._current
        if cur is None:
            return None
        self._current = None
        splats = [splat_to_dict(s) for s in self._raw_guest.console.splats_since(cur["mark"])]
        return TestResult(name=cur["nodeid"], status=status, message=why,
                          duration_s=round(time.monotonic() - cur["start"], 3),
                          log=str(cur["log_path"].relative_to(self.results_dir)),
                          splats=splats, runs=[status],
                          metrics=cur["recorder"].metrics, details=cur["recorder"].details)

    @property
    def _coverage(self) -> bool:
        """--coverage builds: reset gcov's counters before each test, copy them after it."""
        return bool((self._build.data.get("coverage") or {}).get("enabled")) and \
            self._kernel_config.get("CONFIG_GCOV_KERNEL") == "y"

    def _coverage_reset(self) -> None:
        from ..coverage import BOOT_PREFIX, COVERAGE_DIR, collect_gcda, reset_counters
        try:
            if not self._boot_coverage_kept:   # affected.py: a line booting runs affects every test
                self._boot_coverage_kept = True
                n = len(list((self.results_dir / COVERAGE_DIR).glob(BOOT_PREFIX + "*"))) + 1
                collect_gcda(self._raw_guest, self._build.objdir or "",
                             self.results_dir / COVERAGE_DIR / f"{BOOT_PREFIX}{n}")
            reset_counters(self._raw_guest)
        except Exception as exc:   # coverage is evidence, not the verdict: say so, go on
            self.log(f"# coverage: could not reset gcov counters: {exc}")

    def _coverage_collect(self, cur: Dict[str, Any]) -> None:
        from ..coverage import COVERAGE_DIR, collect_gcda
        rel = f"{COVERAGE_DIR}/{cur['log_path'].stem}"
        try:
            files = collect_gcda(self._raw_guest, self._build.objdir or "",
                                 self.results_dir / rel)
        except Exception as exc:   # a crashed guest, a full disk: the test's verdict stands
            self.log(f"# coverage: could not copy the gcov data: {exc}")
            return
        if files:
            cur["gcda"] = rel

    def _guest_crashed(self) -> Optional[KernelCrashed]:
        """A KernelCrashed for a guest whose kernel logged a fatal report, else None."""
        guest = self._raw_guest
        if not getattr(guest, "tainted", False):
            return None
        console = guest.console
        kind, title, _ = console.fatal or ("panic", console.panic_line, 0.0)
        return KernelCrashed(f"the guest kernel logged {kind_words(kind)}: {title}.", kind, title,
                             panicked=console.panicked)

    # -- hooks ------------------------------------------------------------
    def _kmsg(self, text: str) -> None:
        # <5> = notice: printed on the console at the default console loglevel.
        try:
            self._raw_guest.run(f"echo {shlex.quote('<5>' + text)} > /dev/kmsg", timeout=20, check=False)
        except Exception:  # the guest may be gone; the test outcome says so
            pass

    def _console_size(self) -> int:
        try:
            return os.path.getsize(self._raw_guest.console.log_path)
        except OSError:
            return 0

    def _wait_console(self, marker: str, start: int) -> bool:
        """Wait until marker reaches console.log: every earlier kernel line is then in it too."""
        deadline = time.monotonic() + MARK_TIMEOUT_S
        needle = marker.encode()
        while time.monotonic() < deadline:
            with open(self._raw_guest.console.log_path, "rb") as fh:
                fh.seek(start)
                if needle in fh.read():
                    return True
            time.sleep(0.05)
        return False

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid, location):
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")
        log_path = self.tests_dir / f"{safe}.log"
        n = 1
        while log_path.exists():   # --repeat: one log per run
            n += 1
            log_path = self.tests_dir / f"{safe}.{n}.log"
        self._current = {"nodeid": nodeid, "log_path": log_path, "recorder": Recorder(),
                         "reports": [], "start": time.monotonic(),
                         "console_start": self._console_size(), "nonce": uuid.uuid4().hex[:8]}
        try:
            log_path.write_text(f"# {nodeid}\n")
        except OSError as exc:
            self._current["log_error"] = exc
        self._current["mark"] = self._raw_guest.console.mark()
        if self.guest_lost is None:
            self._kmsg(f"zstest: begin {nodeid} [{self._current['nonce']}]")
            if self._coverage:
                self._coverage_reset()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        cur = self._current
        if cur is None:
            return
        if call.excinfo is not None and _is_guest_lost(call.excinfo.value) \
                and self.guest_lost is None:
            self.guest_lost = call.excinfo.value
            item.session.shouldstop = "the guest was lost"
        if call.when != "teardown":
            return
        if self.guest_lost is None:
            # an oops in another context (a kworker, an interrupt) while the test's own
            # commands went on: the test may pass its checks, but the guest is done
            crashed = self._guest_crashed()
            if crashed is not None:
                self.guest_lost = crashed
                item.session.shouldstop = "the guest kernel crashed"
        # End of the test: flush the kernel log through the console, then look for splats.
        end_marker = f"zstest: end {cur['nodeid']} [{cur['nonce']}]"
        if self.guest_lost is None:
            if self._coverage:
                self._coverage_collect(cur)
            self._kmsg(end_marker)
            self._wait_console(end_marker, cur["console_start"])
        splats = [splat_to_dict(s) for s in self._raw_guest.console.splats_since(cur["mark"])]
        cur["splats"] = splats
        if splats and report.passed:
            # A test whose run made the kernel complain has failed, whatever it asserted.
            cur["failed_by_splat"] = True
            report.outcome = "failed"
            first = splats[0]
            report.longrepr = (f"the kernel logged {kind_words(first.get('kind', 'splat'))}: "
                               f"{first.get('title', '')}\n\n" +
                               "\n\n".join(s.get("text", s.get("title", "")) for s in splats))

    def pytest_runtest_logreport(self, report):
        if self._current is not None:
            self._current["reports"].append(report)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logfinish(self, nodeid, location):
        cur = self._current
        if cur is None:
            return
        result = TestResult(name=nodeid, status="passed",
                            duration_s=round(time.monotonic() - cur["start"], 3),
                            log=str(cur["log_path"].relative_to(self.results_dir)))
        for rep in cur["reports"]:
            if rep.skipped and rep.when in ("setup", "call"):
                result.status = "skipped"
                result.message = _skip_reason(rep)
            elif rep.failed:
                by_splat = rep.when == "teardown" and cur.get("failed_by_splat")
                result.status = "failed" if rep.when == "call" or by_splat else "error"
                result.message = _failure_text(rep)
                break
        crashed = self.guest_lost if isinstance(self.guest_lost, KernelCrashed) else None
        if crashed is not None:
            # the kernel is to blame, whichever phase noticed it: the splat's title is the why
            # (the finished report's title: a VM_BUG_ON's names the BUG line it led to)
            kind, title = crashed.kind, crashed.title
            done = [s for s in cur.get("splats", []) if s.get("fatal")]
            if done:
                kind, title = done[0].get("kind", kind), done[0].get("title", title)
            result.status = "failed"
            result.message = (f"the kernel logged {kind_words(kind)}: {title}\n"
                              f"{result.message}").rstrip()
        elif self.guest_lost is not None and result.status in ("failed", "error"):
            # no kernel evidence (yet): trouble reaching the guest, not a failed check
            result.status = "error"
            result.message = f"the guest was lost: {self.guest_lost}\n{result.message}"
        result.splats = cur.get("splats", [])
        if result.splats and result.status in ("passed", "skipped"):
            result.status = "failed"
        if result.splats and not result.message:
            first = result.splats[0]
            result.message = (f"the kernel logged {kind_words(first.get('kind', 'splat'))}: "
                              f"{first.get('title', '')}")
        result.metrics = cur["recorder"].metrics
        result.details = cur["recorder"].details
        if cur.get("gcda"):
            result.coverage = {"gcda": [cur["gcda"]]}
        result.runs = [result.status]
        # Keep the kernel's voice for this test next to its commands.
        try:
            with open(cur["log_path"], "a") as fh, \
                    open(self._raw_guest.console.log_path, "rb") as con:
                con.seek(cur["console_start"])
                fh.write("\n# console during this test\n")
                fh.write(con.read().decode("utf-8", "replace"))
        except OSError:
            pass   # a full disk: the run says so once, at its end
        self.results.append(result)
        self._current = None


def _is_guest_lost(exc: BaseException) -> bool:
    return isinstance(exc, BootFailed)   # GuestLost is a BootFailed


def _skip_reason(rep) -> str:
    lr = rep.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2]).removeprefix("Skipped: ")
    return str(lr)


def _failure_text(rep) -> str:
    text = getattr(rep, "longreprtext", "") or str(rep.longrepr)
    # The last "E   " lines carry the assertion; keep the whole text but put them first.
    errors = [ln[4:] for ln in text.splitlines() if ln.startswith("E   ")]
    head = "\n".join(errors[:20])
    return (head + "\n\n" + text[-4000:]) if head else text[-4000:]


# Fixtures are module functions (pytest deprecates session fixtures on plugin instances);
# each finds the run's GuestSuitePlugin in the config stash.
def _plugin(request) -> GuestSuitePlugin:
    return request.config.stash[PLUGIN_KEY]


@pytest.fixture(scope="session")
def guest(request):
    """The guest over SSH; every command and its output go to the running test's log."""
    return _plugin(request).logged_guest


@pytest.fixture(scope="session")
def console(request):
    """The serial console monitor (.splats, .tail(), .log_path)."""
    return _plugin(request).raw_guest.console


@pytest.fixture(scope="session")
def build_manifest(request) -> BuildManifest:
    """The build under test (manifests.BuildManifest: typed fields, artifacts, arch)."""
    return _plugin(request).manifest


@pytest.fixture(scope="session")
def build_dir(request) -> Path:
    """The build dir as this run found it (build.json's build_dir is where it was built: a
    build dir moved or copied to a CI runner is here, not there)."""
    return _plugin(request).local_build_dir


@pytest.fixture(scope="session")
def build_info(request):
    """build.json of the build under test, as read (every key); `local_build_dir`: the
    build_dir fixture's path, for suites that read it from here."""
    plugin = _plugin(request)
    return dict(plugin.manifest.data, local_build_dir=str(plugin.local_build_dir))


@pytest.fixture(scope="session")
def kernel_config(request):
    """CONFIG_X -> value from the build's .config."""
    return _plugin(request).config_options


@pytest.fixture(scope="session")
def page_size(request) -> int:
    """The kernel's page size in bytes (build.json's arch; 4096 for builds from before)."""
    return _plugin(request).manifest.page_size


@pytest.fixture
def record(request):
    """record.metric(before=..., after=...), record.detail(key, value),
    record.perf(name, value, unit, better, exact=False) -> results.json."""
    return _plugin(request).recorder
