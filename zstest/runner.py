"""boot-and-run: boot a build's kernel under QEMU and run a guest suite against it.

BootRunRequest -> RunResults, with results.json, junit.xml, summary.txt,
console.log and one log per test always written to the results directory,
whatever happens (no boot, a panic, Ctrl-C).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from .cache import cache_dir
from .errors import EXIT_PREREQ, BadInput, BootFailed, ZstestError
from .results import CONSOLE_LOG, RunResults, TestResult, now_iso, write_results
from .suites import SUITES_DIR, load_suite
from .suites.plugin import GuestSuitePlugin, splat_to_dict

log = logging.getLogger("zstest.runner")


@dataclass
class BootRunRequest:
    build_dir: Path
    out: Path
    suite: str = "default"
    keyword: str = ""              # pytest -k
    repeat: int = 1
    timeout: float = 300.0         # default per guest command
    run_timeout: float = 3600.0    # the whole run, boot included: a hung guest cannot hold CI
    accel: str = "auto"
    memory_mb: Optional[int] = None
    cmdline_extra: str = ""
    boot_timeout: float = 120.0
    pytest_args: List[str] = field(default_factory=list)
    on_progress: Any = None        # callable(str) for one-line progress messages


def load_build(build_dir: Path) -> Dict[str, Any]:
    """build.json of a build directory, with its bzImage checked to exist."""
    build_dir = Path(build_dir)
    manifest = build_dir / "build.json"
    if not manifest.is_file():
        raise BadInput(f"{build_dir} is not a zstest build directory (no build.json); "
                       f"run `zstest build` first or pass --build DIR.")
    try:
        info = json.loads(manifest.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"{manifest} is not valid JSON ({exc}).") from None
    # A series whose middle patch broke the build still gives a kernel ("bootable").
    if info.get("status") != "ok" and not info.get("bootable"):
        raise BadInput(f"the build in {build_dir} did not succeed (status "
                       f"{info.get('status')!r}); there is no kernel to boot.")
    kernel = build_dir / (info.get("artifacts", {}).get("bzImage") or "bzImage")
    if not kernel.is_file():
        raise BadInput(f"{build_dir} has no bzImage; rebuild it with `zstest build`.")
    return info


def read_kernel_config(path: Path) -> Dict[str, str]:
    """CONFIG_X -> value from a .config; '# CONFIG_X is not set' lines are left out."""
    config: Dict[str, str] = {}
    if not path.is_file():
        return config
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            config[key] = value.strip('"')
    return config


def default_results_dir() -> Path:
    """A new results dir in the cache, created here: the mkdir is the claim (two runs in one
    second never share it)."""
    from .fsutil import claim_unique_dir
    return claim_unique_dir(cache_dir("results"), time.strftime("%Y%m%d-%H%M%S"))


def _link_last(out: Path) -> None:
    """results/last names the newest run in the cache; an --out dir elsewhere may not last."""
    last = cache_dir("results") / "last"
    if last.parent.resolve() not in out.resolve().parents:
        return
    try:
        if last.is_symlink() or last.exists():
            last.unlink()
        last.symlink_to(out.resolve())
    except OSError:
        pass


def boot_and_run(req: BootRunRequest) -> RunResults:
    from .guest_tools import build_guest_tools
    from .image import ImageRequest, build_image
    from .vm.guest import GuestSpec, launch_guest

    started = time.monotonic()
    # QEMU runs with its work dir as cwd: every path handed to it must be absolute.
    out = Path(req.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    _link_last(out)
    progress = req.on_progress or (lambda msg: None)
    suite = load_suite(req.suite)
    info = load_build(req.build_dir)
    build_dir = Path(req.build_dir).resolve()
    artifacts = info.get("artifacts", {})
    run = RunResults(suite=suite.name, started=now_iso(), repeat=req.repeat,
                     console_log=CONSOLE_LOG,
                     kernel={"build_dir": str(build_dir),
                             "version": info.get("kernel", {}).get("version")})
    _save(out, run)   # something is on disk from the first second

    try:
        progress("image: preparing the guest initramfs")
        image = build_image(ImageRequest(build_dir=build_dir, extra_files=build_guest_tools(),
                                         recipe=suite.recipe))
        run.image = {"path": str(image.path), "size_bytes": image.size_bytes,
                     "digest": image.digest, "built": image.built}
        spec = GuestSpec(kernel=build_dir / (artifacts.get("bzImage") or "bzImage"),
                         image=image, memory_mb=req.memory_mb or suite.memory_mb,
                         cpus=suite.cpus, dimm_mb=suite.dimm_mb, accel=req.accel,
                         cmdline_extra=req.cmdline_extra, console_log=out / CONSOLE_LOG,
                         workdir=out / ".vm", boot_timeout=req.boot_timeout)
        progress(f"boot: starting QEMU (suite {suite.name})")
        with launch_guest(spec) as guest:
            console_error = lambda: guest.console.write_error   # noqa: E731
            run.accel = {"name": guest.accel.name, "reason": guest.accel.reason}
            run.boot_to_ssh_s = round(guest.boot_to_ssh_s, 3)
            uname = guest.run("uname -r", timeout=30).stdout.strip()
            run.kernel["uname"] = uname
            progress(f"boot: {uname} up in {guest.boot_to_ssh_s:.2f} s ({guest.accel.name}); "
                     f"running the {suite.name} suite")
            with _Watchdog(req.run_timeout - (time.monotonic() - started), guest) as dog:
                _run_suite(req, suite, guest, info, build_dir, out, run, progress)
            if dog.fired:
                run.status = "error"
                run.message = (f"the run exceeded its time limit of {req.run_timeout:g} s; "
                               f"the guest was stopped")
        run.vm = {"ssh_port": guest.ssh_port, "timings": guest.timings,
                  "ssh_reconnects": guest.reconnects}
        # After teardown the console is closed: a report still open at poweroff is counted too.
        _collect_unattributed_splats(guest, run)
        if run.status != "error" or not run.message:
            run.finish()
    except KeyboardInterrupt:
        run.status = "interrupted"
        run.message = "interrupted (Ctrl-C or SIGTERM); partial results kept"
        run.duration_s = round(time.monotonic() - started, 3)
        _save(out, run)
        raise
    except BootFailed as exc:
        run.status = "error"
        run.message = exc.message
        if exc.detail:
            run.message += "\n" + exc.detail
        run.duration_s = round(time.monotonic() - started, 3)
        _save(out, run)
        _annotate(out, run)
        raise
    except ZstestError as exc:
        run.duration_s = round(time.monotonic() - started, 3)
        run.message = run.message or exc.message
        _save(out, run)
        _annotate(out, run)
        raise
    run.duration_s = round(time.monotonic() - started, 3)
    _save(out, run)
    _annotate(out, run)
    _raise_if_not_saved(out, run, console_error)
    if run.exit_code != 0:
        # the CLI's log format makes this the run's one `zstest: error:` sentence on stderr
        log.error("error: %s", run.verdict())
    return run


def _run_suite(req, suite, guest, info, build_dir, out, run, progress) -> None:
    import pytest

    from .suites import plugin as plugin_fixtures

    kernel_config = read_kernel_config(build_dir / (info.get("artifacts", {}).get("config") or ".config"))
    merged: Dict[str, TestResult] = {}
    order: List[str] = []
    keyword = " and ".join(f"({k})" for k in (suite.keyword, req.keyword) if k)
    for attempt in range(1, req.repeat + 1):
        # Where the build dir is now (build.json's build_dir is where it was built).
        info = dict(info, local_build_dir=str(build_dir))
        plugin = GuestSuitePlugin(guest, results_dir=out, build_info=info,
                                  kernel_config=kernel_config, default_timeout=req.timeout)
        args = [str(p) for p in suite.paths]
        args += ["-c", str(SUITES_DIR / "pytest.ini"), "--rootdir", str(SUITES_DIR),
                 "-q", "-p", "no:cacheprovider", "--no-header", "-o", "console_output_style=classic"]
        if keyword:
            args += ["-k", keyword]
        args += req.pytest_args
        if req.repeat > 1:
            progress(f"suite: run {attempt} of {req.repeat}")
        code = pytest.main(args, plugins=[plugin, plugin_fixtures])
        for result in plugin.results:
            if result.name in merged:
                merged[result.name].merge_repeat(result)
            else:
                merged[result.name] = result
                order.append(result.name)
        run.tests = [merged[n] for n in order]
        _save(out, run)   # partial results after every repeat
        if int(code) == 2 and plugin.guest_lost is None:
            raise KeyboardInterrupt   # pytest swallowed Ctrl-C; the CLI turns it into 130
        if int(code) == 3 and _disk_full(out):
            raise _no_space(out, run, "the per-test logs")
        if int(code) in (3, 4):
            raise BadInput(f"pytest could not run the {suite.name} suite (exit {int(code)}); "
                           f"check -k and the pytest options.")
        if plugin.guest_lost is not None:
            lost = plugin.guest_lost
            panicked = getattr(lost, "panicked", False) or guest.console.panicked
            run.status = "failed" if panicked else "error"
            run.message = ("the kernel panicked during a test" if panicked else
                           f"the guest stopped answering during a test: {lost}")
            tail = guest.console.tail(40)
            run.message += "\nconsole tail:\n" + tail
            return
    if not run.tests:
        run.status = "error"
        run.message = f"no test of the {suite.name} suite was selected (-k {keyword!r})" \
            if keyword else f"the {suite.name} suite has no tests"


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _annotate(out: Path, run: RunResults) -> None:
    """Decode every splat (file:line, the patch that touched it) into results.json, last."""
    if getattr(run, "write_error", None) is not None or not (
            run.splats or any(t.splats for t in run.tests)):
        return
    from .decode import annotate_results
    try:
        annotate_results(out)
    except Exception as exc:   # evidence is already on disk; decoding is a bonus
        log.warning("could not decode the splats: %s", exc)


def _save(out: Path, run: RunResults) -> None:
    """write_results that never raises: a full disk is reported once the run has ended."""
    try:
        write_results(out, run)
    except OSError as exc:
        log.warning("cannot write the results to %s: %s", out, exc)
        run.write_error = exc


def _disk_full(out: Path) -> bool:
    try:
        st = os.statvfs(out)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 16384


def _no_space(out: Path, run: RunResults, what: str) -> ZstestError:
    return ZstestError(f"no space left on device (ENOSPC) in {out}: {what} could not be written "
                       f"completely; free space or pass --out on a larger filesystem (run status: "
                       f"{run.status}; whatever fit was kept).", exit_code=EXIT_PREREQ)


def _raise_if_not_saved(out: Path, run: RunResults, console_error) -> None:
    """Evidence that could not be written is a failed run, named in one sentence."""
    console = console_error()
    saved = getattr(run, "write_error", None)
    for exc, what in ((console, "console.log"), (saved, "results.json, junit.xml or summary.txt")):
        if exc is None:
            continue
        if exc.errno in _DISK_FULL or _disk_full(out):
            raise _no_space(out, run, what)
        raise ZstestError(f"cannot write {what} in {out} ({exc.strerror or exc}; run status: "
                          f"{run.status}; whatever could be written was kept).",
                          exit_code=EXIT_PREREQ)


def _collect_unattributed_splats(guest, run: RunResults) -> None:
    seen = {(s.get("line_no"), s.get("title")) for t in run.tests for s in t.splats}
    run.splats = [d for d in (splat_to_dict(s) for s in guest.console.splats)
                  if (d.get("line_no"), d.get("title")) not in seen]


class _Watchdog:
    """Kills the guest when the whole run overruns: a hung guest must not hold CI forever."""

    def __init__(self, seconds: float, guest):
        self.seconds = max(seconds, 1.0)
        self.guest = guest
        self.fired = False
        self._timer: Optional[threading.Timer] = None

    def _fire(self):
        self.fired = True
        log.warning("run time limit reached: stopping the guest")
        # SIGKILL from this thread; the main thread's blocked SSH call then sees the guest lost.
        if self.guest.pid:
            try:
                os.kill(self.guest.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def __enter__(self):
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        return False
