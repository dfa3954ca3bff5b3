"""boot-and-run: boot a build's kernel under QEMU and run a guest suite against it.

BootRunRequest -> RunResults, with results.json, junit.xml, summary.txt,
console.log and one log per test always written to the results directory,
whatever happens (no boot, a panic, Ctrl-C).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from .cache import cache_dir
from .errors import EXIT_PREREQ, BadInput, BootFailed, ZstestError
from .kconfig import read_config
from .manifests import BuildManifest, has_build
from .manifests import load_build as load_manifest
from .results import CONSOLE_LOG, RunResults, TestResult, now_iso, write_results
from .suites import SUITES_DIR, load_suite
from .splats import kind_words
from .suites.plugin import GuestSuitePlugin
from .vm.ssh import KernelCrashed

if TYPE_CHECKING:
    from .vm.guest import GuestSpec

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
    stop_on_oops: bool = False     # after a crash, leave the rest unrun instead of a fresh guest
    vmcore: Optional[Path] = None  # a panicked guest's memory goes here (FILE.N for guest N)
    # a guest whose tests failed (or whose kernel crashed) stays up, reachable over ssh, until
    # Ctrl-C or until QEMU exits; the run stops at that guest
    keep_vm_on_failure: bool = False
    # the zstest command line for results.json (zstest.options.command_line: every caller sets it)
    command: List[str] = field(default_factory=list)
    say: Any = None                # callable(str): lines a person must see, also with --quiet
    # exactly these node ids, in this order (None: the suite's selection): --affected, mutate
    tests: Optional[List[str]] = None
    selection: Dict[str, Any] = field(default_factory=dict)   # results.json's `selection`


def load_build(build_dir: Path) -> BuildManifest:
    """build.json of a build directory, with its bzImage checked to exist."""
    build_dir = Path(build_dir)
    if not has_build(build_dir):
        raise BadInput(f"{build_dir} is not a zstest build directory (no build.json); "
                       f"run `zstest build` first or pass --build DIR.")
    info = load_manifest(build_dir)
    # A series whose middle patch broke the build still gives a kernel ("bootable").
    if info.status != "ok" and not info.bootable:
        raise BadInput(f"the build in {build_dir} did not succeed (status "
                       f"{info.status!r}); there is no kernel to boot.")
    if not info.artifact(info.artifacts.bzimage, "bzImage").is_file():
        raise BadInput(f"{build_dir} has no bzImage; rebuild it with `zstest build`.")
    return info


@dataclass
class GuestPlan:
    """What a guest of a build is booted with (boot-and-run's suite, or the shell's options)."""
    build_dir: Path                   # where the build is now: the directory the user named
    info: BuildManifest               # its build.json
    out: Path                         # console.log and the VM's work dir go here
    recipe: Optional[Path] = None     # the image recipe (None: qemu-images/initramfs.ini)
    memory_mb: int = 1024
    cpus: int = 2
    dimm_mb: Optional[int] = None     # hot-pluggable memory, where the arch has it
    accel: str = "auto"
    cmdline_extra: str = ""
    boot_timeout: float = 120.0
    qemu_extra: List[str] = field(default_factory=list)
    vmcore: Optional[Path] = None


def prepare_guest(plan: GuestPlan) -> "GuestSpec":
    """The guest of a build, for boot-and-run and shell alike: the build's target, its image
    (modules and kmod from the build dir as it is now; a cache hit when nothing changed), the
    guest tools of its arch and the GuestSpec that boots its kernel."""
    from .guest_tools import build_guest_tools
    from .image import ImageRequest, build_image
    from .target import Target
    from .vm.guest import GuestSpec

    info, target = plan.info, Target.from_manifest(plan.info)
    image = build_image(ImageRequest(build_dir=plan.build_dir, recipe=plan.recipe,
                                     arch=target.name, extra_files=build_guest_tools(target)))
    # QEMU runs with its work dir as cwd: the kernel's path must be absolute
    kernel = info.artifact(info.artifacts.bzimage, "bzImage").resolve()
    return GuestSpec(kernel=kernel, image=image,
                     memory_mb=plan.memory_mb, cpus=plan.cpus,
                     # no hot-pluggable memory on the arch: its hot-unplug tests skip
                     dimm_mb=plan.dimm_mb if target.arch.memory_hotplug else None,
                     accel=plan.accel, arch=target.name, page_size=target.page_size,
                     cmdline_extra=plan.cmdline_extra, console_log=plan.out / CONSOLE_LOG,
                     workdir=plan.out / ".vm", boot_timeout=plan.boot_timeout,
                     qemu_extra=list(plan.qemu_extra), vmcore=plan.vmcore)


def read_kernel_config(path: Path) -> Dict[str, str]:
    """CONFIG_X -> value (unquoted) from a .config, read by kconfig.read_config; options not
    set are left out."""
    if not path.is_file():
        return {}
    return {f"CONFIG_{name}": value.strip('"') for name, value in read_config(path).items()
            if value != "n"}


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
    state = _RunState()
    try:
        run = _boot_and_run(req, state)
        if state.kept is not None:
            _hold(req, state, Path(req.out).expanduser().resolve())
        return run
    finally:
        if state.kept is not None:   # Ctrl-C, SIGTERM, an error: the kept guest goes too
            state.kept.close()


def _hold(req: BootRunRequest, state: "_RunState", out: Path) -> None:
    """--keep-vm-on-failure: results are final; hand the guest over and wait (Ctrl-C: 130)."""
    from .vm.keep import GuestUnreachable, hold, open_for_ssh
    say = req.say or (lambda msg: print(f"zstest: {msg}", file=sys.stderr, flush=True))
    try:
        kept = open_for_ssh(state.kept_guest, out / ".vm" / "keep")
    except GuestUnreachable as exc:
        say(f"the failed guest cannot be kept: {exc.message}; stopping it")
        return
    try:
        hold(kept, say)
    finally:
        kept.remove_key()


def _boot_and_run(req: BootRunRequest, state: "_RunState") -> RunResults:
    started = time.monotonic()
    # QEMU runs with its work dir as cwd: every path handed to it must be absolute.
    out = Path(req.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    _link_last(out)
    progress = req.on_progress or (lambda msg: None)
    suite = load_suite(req.suite)
    # where the build is now (build.json's own build_dir is where it was built: provenance)
    build_dir = Path(req.build_dir).expanduser().resolve()
    info = load_build(build_dir)
    run = RunResults(suite=suite.name, started=now_iso(), repeat=req.repeat,
                     console_log=CONSOLE_LOG, command=list(req.command),
                     kernel={"build_dir": str(build_dir), "version": info.kernel.version,
                             "arch": info.arch, "page_size": info.page_size},
                     selection=dict(req.selection))
    _save(out, run)   # something is on disk from the first second
    state.build_data = info.data

    try:
        progress("image: preparing the guest initramfs")
        spec = prepare_guest(GuestPlan(build_dir=build_dir, info=info, out=out,
                                       recipe=suite.recipe,
                                       memory_mb=req.memory_mb or suite.memory_mb,
                                       cpus=suite.cpus, dimm_mb=suite.dimm_mb, accel=req.accel,
                                       cmdline_extra=req.cmdline_extra,
                                       boot_timeout=req.boot_timeout))
        image = spec.image
        run.image = {"path": str(image.path), "size_bytes": image.size_bytes,
                     "digest": image.digest, "built": image.built}
        with _Watchdog(req.run_timeout - (time.monotonic() - started), state) as dog:
            _run_in_guests(req, suite, spec, info, build_dir, out, run, state, progress)
        if dog.fired:
            run.status = "error"
            run.message = (f"the run exceeded its time limit of {req.run_timeout:g} s; "
                           f"the guest was stopped")
        run.finish()
    except KeyboardInterrupt:
        run.status = "interrupted"
        run.message = "interrupted (Ctrl-C or SIGTERM); partial results kept"
        _end(out, run, state, started)
        raise
    except BootFailed as exc:
        if exc.splat:   # the kernel hung in its own init: its evidence
            run.splats.append(exc.splat)
        if not run.tests:      # the first guest never came up
            run.status = "error"
            run.message = exc.message + ("\n" + exc.detail if exc.detail else "")
        else:                  # a fresh guest after a crash did not: the tests so far stand
            run.message = f"{run.message}\n{exc.message}".strip()
            run.finish()
        _end(out, run, state, started)
        if run.exit_code == 1:
            log.error("error: %s", run.verdict())
            return run
        raise
    except ZstestError as exc:
        run.message = run.message or exc.message
        _end(out, run, state, started)
        raise
    _end(out, run, state, started)
    _raise_if_not_saved(out, run, lambda: state.console_error)
    if run.exit_code != 0:
        # the CLI's log format makes this the run's one `zstest: error:` sentence on stderr
        log.error("error: %s", run.verdict())
    return run


@dataclass
class _RunState:
    """What the run knows of its guests, whatever ends it."""
    guest: Any = None                  # the guest now running (the watchdog kills it)
    boots: List[Dict[str, Any]] = field(default_factory=list)
    first_fatal_wall: Optional[float] = None
    console_error: Optional[OSError] = None
    deadline_hit: bool = False         # the watchdog stopped the run: no fresh guest after it
    build_data: Optional[Dict[str, Any]] = None   # build.json of the build under test
    kept: Optional[contextlib.ExitStack] = None   # --keep-vm-on-failure: the guest's teardown
    kept_guest: Any = None


def _end(out: Path, run: RunResults, state: _RunState, started: float) -> None:
    """Every ending: the console log's splats into the results, then write and decode."""
    from .evidence import reconcile
    run.vm["boots"] = state.boots
    try:
        reconcile(run, out / CONSOLE_LOG,
                  unfinished_status="interrupted" if run.status == "interrupted" else "error")
    except OSError as exc:
        log.warning("cannot read %s again: %s", out / CONSOLE_LOG, exc)
    if run.status not in ("interrupted",):
        run.finish()
    _coverage(out, run, state)
    run.cause = run.blame()
    run.duration_s = round(time.monotonic() - started, 3)
    if state.first_fatal_wall is not None:
        # from the first fatal report the console showed to the final results.json
        run.verdict_after_splat_s = round(time.monotonic() - state.first_fatal_wall, 3)
    _save(out, run)
    _annotate(out, run)


def _coverage(out: Path, run: RunResults, state: "_RunState") -> None:
    """--coverage builds: the gcov data each test left, mapped onto the series' lines."""
    build = state.build_data or {}
    if not (build.get("coverage") or {}).get("enabled"):
        return
    if not any((t.coverage or {}).get("gcda") for t in run.tests):
        run.coverage = {"notes": ["no test left gcov data (no test ran, or the guest had no "
                                  "/sys/kernel/debug/gcov)"]}
        return
    from .affected import analyze_and_keep
    try:
        run.coverage = analyze_and_keep(out, run, build, Path(run.kernel.get("build_dir") or "."))
    except Exception as exc:   # coverage is evidence next to the verdict, never the verdict
        log.warning("coverage: %s", exc)
        run.coverage = {"notes": [f"coverage could not be computed: {exc}"]}


def _run_in_guests(req, suite, spec, info, build_dir, out, run, state, progress) -> None:
    """Run the selection; when a guest crashes or is lost, the rest runs in a fresh one."""
    from .vm.guest import launch_guest

    kernel_config = read_kernel_config(build_dir / (info.artifacts.config or ".config"))
    merged: Dict[str, TestResult] = {}
    order: List[str] = []
    keyword = " and ".join(f"({k})" for k in (suite.keyword, req.keyword) if k)
    for attempt in range(1, req.repeat + 1):
        if req.repeat > 1:
            progress(f"suite: run {attempt} of {req.repeat}")
        # None: the whole selection
        pending: Optional[List[str]] = list(req.tests) if req.tests is not None else None
        while pending is None or pending:
            why_boot = state.boots[-1]["ended"] if state.boots else ""
            n = len(state.boots) + 1
            spec.console_append = (f"guest {n}: a fresh boot for the tests left after: {why_boot}"
                                   if n > 1 else "")
            if req.vmcore:
                spec.vmcore = Path(req.vmcore) if n == 1 else Path(f"{req.vmcore}.{n}")
            progress(f"boot: starting QEMU (suite {suite.name}" +
                     (f", guest {n}: {len(pending)} tests left)" if n > 1 else ")"))
            boot = {"n": n, "reason": why_boot or "start", "ended": None}
            state.boots.append(boot)
            try:
                guest_cm = launch_guest(spec)
                guest = guest_cm.__enter__()
            except BootFailed as exc:
                boot["ended"] = "did not boot"
                if n == 1:
                    raise
                if exc.splat:
                    run.splats.append(exc.splat)
                # a fresh guest that does not come up: the tests so far stand, the rest did not run
                run.not_run = pending or []
                run.message = (f"{run.message}\n" if run.message else "") + \
                    f"a fresh guest for the {len(run.not_run)} tests left did not boot: {exc.message}"
                return
            with contextlib.ExitStack() as stack:
                stack.push(guest_cm)
                state.guest = guest
                if n == 1:
                    run.accel = {"name": guest.accel.name, "reason": guest.accel.reason}
                    run.boot_to_ssh_s = round(guest.boot_to_ssh_s, 3)
                boot["boot_to_ssh_s"] = round(guest.boot_to_ssh_s, 3)
                uname = guest.run("uname -r", timeout=30).stdout.strip()
                run.kernel["uname"] = uname
                progress(f"boot: {uname} up in {guest.boot_to_ssh_s:.2f} s ({guest.accel.name}); "
                         f"running the {suite.name} suite")
                try:
                    plugin = _run_pytest(req, suite, guest, info, build_dir, kernel_config, out,
                                         keyword, pending, run)
                    if req.keep_vm_on_failure and _failed_in(plugin) and guest.qemu_alive \
                            and not guest.console.panicked:   # a panicked kernel never answers
                        state.kept, state.kept_guest = stack.pop_all(), guest
                except _Interrupted as exc:
                    _merge_results(exc.plugin.results, merged, order, run)
                    raise
                finally:
                    if guest.console.fatal is not None and state.first_fatal_wall is None:
                        state.first_fatal_wall = guest.console.fatal[2]
                    run.vm.update({"ssh_port": guest.ssh_port, "timings": guest.timings,
                                   "ssh_reconnects": run.vm.get("ssh_reconnects", 0) +
                                   guest.reconnects})
            state.guest = None
            state.console_error = state.console_error or guest.console.write_error
            if getattr(guest, "vmcore_written", None):   # dumped at teardown, on a panic
                run.vm.setdefault("vmcores", []).append(str(spec.vmcore))
            _merge_results(plugin.results, merged, order, run)
            _save(out, run)   # partial results after every guest
            lost = plugin.guest_lost
            if state.kept is not None and lost is None:
                return      # the failed guest is kept: no more runs (--repeat) after it
            if lost is None:
                break
            boot["ended"] = _lost_summary(lost)
            pending = plugin.not_run()
            if guest.console.panicked or isinstance(lost, KernelCrashed):
                run.kernel_crashed = True
            else:
                # no kernel evidence (yet): unless the console shows one, this is exit 5
                run.status = "error"
                note = f"the guest stopped answering during a test: {lost}"
                run.message = f"{run.message}\n{note}" if run.message else note
            if state.deadline_hit:
                run.not_run = pending
                return
            if pending and (req.stop_on_oops or state.kept is not None):
                run.not_run = pending
                why = "--stop-on-oops" if req.stop_on_oops else "--keep-vm-on-failure"
                run.message = f"{boot['ended']}; {len(pending)} tests not run ({why})"
                return
            if state.kept is not None:
                return
            if not pending:
                break
            if len(state.boots) >= MAX_GUESTS:
                run.not_run = pending
                run.message = (f"{len(state.boots)} guests were lost in this run; "
                               f"{len(pending)} tests not run")
                return
    if not run.tests:
        run.status = "error"
        run.message = f"no test of the {suite.name} suite was selected (-k {keyword!r})" \
            if keyword else f"the {suite.name} suite has no tests"


# A run whose every guest dies gives up after this many fresh boots.
MAX_GUESTS = 8


def _failed_in(plugin) -> bool:
    """A test of this guest's session did not pass, or the guest was lost during one."""
    return plugin.guest_lost is not None or any(
        r.status in ("failed", "error", "interrupted") for r in plugin.results)


def _merge_results(results, merged: Dict[str, TestResult], order: List[str], run) -> None:
    """Fold one pytest session's results into the run (a --repeat folds into pass counts)."""
    for result in results:
        if result.name in merged:
            merged[result.name].merge_repeat(result)
        else:
            merged[result.name] = result
            order.append(result.name)
    run.tests = [merged[n] for n in order]


def _lost_summary(lost: BaseException) -> str:
    if isinstance(lost, KernelCrashed):
        return f"the kernel logged {kind_words(lost.kind)}: {lost.title}"
    text = getattr(lost, "message", str(lost))
    return text.splitlines()[0] if text else type(lost).__name__


def _run_pytest(req, suite, guest, info, build_dir, kernel_config, out, keyword, pending, run):
    """One pytest session in one guest; returns the plugin (results, loss, what is left)."""
    import pytest

    from .suites import plugin as plugin_fixtures

    # build_dir: where the build is now (build.json's build_dir is where it was built)
    plugin = GuestSuitePlugin(guest, results_dir=out, build=info, build_dir=build_dir,
                              kernel_config=kernel_config, default_timeout=req.timeout)
    if pending is None:
        args = [str(p) for p in suite.paths]
    else:
        args = [str(SUITES_DIR / nodeid) for nodeid in pending]
    args += ["-c", str(SUITES_DIR / "pytest.ini"), "--rootdir", str(SUITES_DIR),
             "-q", "-p", "no:cacheprovider", "--no-header", "-o", "console_output_style=classic"]
    if keyword and pending is None:
        args += ["-k", keyword]
    args += req.pytest_args
    code = pytest.main(args, plugins=[plugin, plugin_fixtures])
    if code == pytest.ExitCode.INTERRUPTED and plugin.guest_lost is None:
        unfinished = plugin.unfinished_result("interrupted", "interrupted while this test ran")
        if unfinished is not None:
            plugin.results.append(unfinished)
        raise _Interrupted(plugin)   # pytest swallowed Ctrl-C; the CLI turns it into 130
    if code == pytest.ExitCode.INTERNAL_ERROR and _disk_full(out):
        raise _no_space(out, run, "the per-test logs")
    if code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        raise BadInput(f"pytest could not run the {suite.name} suite (exit {int(code)}); "
                       f"check -k and the pytest options.")
    return plugin


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C inside the suite, carrying the results the plugin had (the test cut short too)."""

    def __init__(self, plugin):
        super().__init__()
        self.plugin = plugin


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _annotate(out: Path, run: RunResults) -> None:
    """Decode every splat (file:line, the patch that touched it) into results.json, last."""
    if run.write_error is not None or not (
            run.splats or any(t.splats for t in run.tests)):
        return
    from .decode import annotate_results
    try:
        annotate_results(out, run)
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
    saved = run.write_error
    for exc, what in ((console, "console.log"), (saved, "results.json, junit.xml or summary.txt")):
        if exc is None:
            continue
        if exc.errno in _DISK_FULL or _disk_full(out):
            raise _no_space(out, run, what)
        raise ZstestError(f"cannot write {what} in {out} ({exc.strerror or exc}; run status: "
                          f"{run.status}; whatever could be written was kept).",
                          exit_code=EXIT_PREREQ)


class _Watchdog:
    """Kills the guest when the whole run overruns: a hung guest must not hold CI forever."""

    def __init__(self, seconds: float, state: "_RunState"):
        self.seconds = max(seconds, 1.0)
        self.state = state
        self.fired = False
        self._timer: Optional[threading.Timer] = None

    def _fire(self):
        self.fired = True
        self.state.deadline_hit = True
        log.warning("run time limit reached: stopping the guest")
        # SIGKILL from this thread; the main thread's blocked SSH call then sees the guest lost.
        guest = self.state.guest
        if guest is not None and guest.pid:
            try:
                os.kill(guest.pid, signal.SIGKILL)
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
