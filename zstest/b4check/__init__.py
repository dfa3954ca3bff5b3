"""`zstest b4-check`: a b4 review check. A message on stdin, b4's JSON array out.

check(CheckRequest) finds the series (series.py), keys it by its patchset hash and the run's
settings, and either reuses that key's finished run or runs the pipeline (build, boot, suite,
decode) once for it; render.py shapes the outcome for the message b4 asked about (the cover:
the series' verdict; a patch: the same run seen from that patch). A key's state lives in
<state root>/<key>/ (default cache/b4check/): b4check.json, the series as series.mbox, the
build/ and results/ dirs, worker.log; run.lock is held by whichever process runs it.

--background: the caller takes the lock, forks a worker that keeps it (its own session, stdio
on worker.log, so b4's pipes close at once) and answers `warn: running, see URL`; the next call
finds the verdict. QEMU dies with the worker (PDEATHSIG) and the run is bounded by its run
timeout. Only a verdict the kernel or the series gave is kept (exit 0, 1, 3, 4, 5); a run that
could not test (bad input, a missing tool, interrupted) is tried again on the next call.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from .. import __version__
from ..build import BuildRequest
from ..errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, BadInput, ZstestError
from ..manifests import (RESULTS_JSON, has_build, has_results, load_b4check, load_build,
                         load_results, read_object, save_b4check)
from ..options import (BuildsAndBoots, boot_argv, boot_template, build_argv, build_template,
                       with_reproducer)
from ..patchset import series_patchset_hash
from ..runner import BootRunRequest
from .render import Outcome, checks, error_check
from .series import FoundSeries, find_series

# exit codes that are the series' or the kernel's verdict: kept; anything else is retried
VERDICT_CODES = (0, 1, 3, 4, 5)
LOCK_POLL_S = 2.0


def _stderr(line: str) -> None:
    print(f"zstest b4-check: {line}", file=sys.stderr, flush=True)


@dataclass
class CheckRequest(BuildsAndBoots):
    message: bytes                          # what b4 passed on stdin
    topdir: Path                            # where b4 ran us: its repository's top directory
    kernel: Path                            # the resolved kernel tree
    # how the series is built and booted: zstest.options' requests of the command's options
    # (series, out and build_dir are set by the check)
    build: BuildRequest = field(default_factory=build_template)
    boot: BootRunRequest = field(default_factory=boot_template)
    background: bool = False
    rerun: bool = False
    lore_url: str = "https://lore.kernel.org/all"
    tracking_file: Optional[Path] = None    # $B4_TRACKING_FILE
    state_root: Optional[Path] = None       # default cache/b4check
    url_base: Optional[str] = None          # where state_root is published
    wait_s: float = 3 * 3600.0              # a foreground call waiting for a running check
    log: Callable[[str], None] = _stderr


@dataclass
class _Key:
    key: str
    state_dir: Path
    url: str
    patchset: str
    base: Optional[str]


# ---------------------------------------------------------------- the key and its state

def _tree_head(kernel: Path) -> Optional[str]:
    """The tree's HEAD when it is a git tree: a new HEAD is a new base, so a new key."""
    if not (kernel / ".git").exists():
        return None
    from ..gitsafe import run_git
    from ..proc import CommandError
    try:
        return run_git(["rev-parse", "--verify", "HEAD"], cwd=kernel, timeout=30,
                       check=False).stdout.strip() or None
    except CommandError:
        return None


def _key(req: CheckRequest, found: FoundSeries) -> _Key:
    patchset = series_patchset_hash(found.series.patches)
    # b4's base is a commit of its own repository: meaningful when that is the tree built
    base = req.base or (found.base if req.kernel.resolve() == req.topdir.resolve() else None)
    settings = {"patchset": patchset, "kernel": str(req.kernel), "head": _tree_head(req.kernel),
                "base": base, "build": build_argv(replace(req.build, kernel=None, base=None)),
                "boot": boot_argv(req.boot), "zstest": __version__}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    if req.state_root is not None:
        root = Path(req.state_root)
    else:
        from ..cache import cache_dir
        root = cache_dir("b4check")
    state_dir = root / key
    state_dir.mkdir(parents=True, exist_ok=True)
    url = (f"{req.url_base.rstrip('/')}/{key}/" if req.url_base
           else state_dir.resolve().as_uri() + "/")
    return _Key(key, state_dir, url, patchset, base)


def _state(state_dir: Path) -> Optional[dict]:
    try:
        return load_b4check(state_dir)
    except BadInput:
        return None          # a torn or foreign file: as if no run was made


def _try_lock(path: Path):
    """The run lock's open file when we got it, None while another process holds it."""
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


def _wait_lock(path: Path, wait_s: float, log):
    deadline = time.monotonic() + wait_s
    log(f"waiting for the run of this series already going on ({path.parent})")
    while True:
        fh = _try_lock(path)
        if fh is not None:
            return fh
        if time.monotonic() > deadline:
            raise ZstestError(f"the run in {path.parent} is still going on after {wait_s:g} s.",
                              EXIT_USAGE)
        time.sleep(LOCK_POLL_S)


# ---------------------------------------------------------------- running

def _build_request(req: CheckRequest, k: _Key, series_file: Path):
    return with_reproducer(replace(req.build, kernel=req.kernel, series=str(series_file),
                                   base=k.base, out=k.state_dir / "build", progress=False),
                           _boot_request(req, k))


def _boot_request(req: CheckRequest, k: _Key):
    return replace(req.boot, out=k.state_dir / "results", on_progress=req.log, say=req.log)


def _run_locked(req: CheckRequest, found: FoundSeries, k: _Key) -> dict:
    """One pipeline run for the key (the caller holds its lock); b4check.json at every step."""
    from ..pipeline import PipelineRequest, run_pipeline
    for stale in ("build", "results"):
        shutil.rmtree(k.state_dir / stale, ignore_errors=True)
    series_file = k.state_dir / "series.mbox"
    series_file.write_bytes(found.mbox)
    state = {"status": "running", "pid": os.getpid(), "started": time.time(), "key": k.key,
             "patchset_hash": k.patchset, "source": found.how, "notes": found.notes,
             "series": {"msgid": found.series.msgid, "revision": found.series.revision,
                        "total": found.series.total, "subject": found.series.cover_subject},
             "coverage": req.coverage, "build_dir": str(k.state_dir / "build"),
             "results_dir": str(k.state_dir / "results")}
    save_b4check(k.state_dir, state)
    req.log(f"{time.strftime('%Y-%m-%d %H:%M:%S')}: testing {found.how} (v{found.series.revision}, "
            f"{len(found.series.patches)} patches, patchset {k.patchset[:12]}), pid {os.getpid()}")
    breq = _build_request(req, k, series_file)
    rreq = replace(_boot_request(req, k), command=["zstest", "run"] + breq.argv)
    try:
        outcome = run_pipeline(PipelineRequest(build=breq, run=rreq, echo=req.log))
        error = outcome.error
        state.update(exit_code=outcome.exit_code, error=error.message if error else "")
    except ZstestError as exc:
        state.update(exit_code=exc.exit_code, error=exc.message)
    except KeyboardInterrupt:
        state.update(status="interrupted", exit_code=EXIT_INTERRUPTED,
                     error="the run was interrupted.", finished=time.time())
        save_b4check(k.state_dir, state)
        raise
    except Exception as exc:
        # a zstest bug: said in the state (the next call tries again), the traceback logged
        state.update(status="error", exit_code=EXIT_USAGE, finished=time.time(),
                     error=f"zstest failed: {exc!r} (a zstest bug; the traceback is logged).")
        save_b4check(k.state_dir, state)
        raise
    state.update(status="done" if state["exit_code"] in VERDICT_CODES else "error",
                 finished=time.time())
    save_b4check(k.state_dir, state)
    verdict = state["error"] or ("the series passed" if state["exit_code"] == 0 else
                                 "the tests failed (results.json says which)")
    req.log(f"exit {state['exit_code']}: {verdict}")
    return state


def _start_worker(req: CheckRequest, found: FoundSeries, k: _Key, lock) -> int:
    """Fork the run into its own session, holding the lock; the caller returns at once."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        lock.close()            # the worker's copy of the descriptor keeps the flock
        req.log(f"running in the background (pid {pid}); log: {k.state_dir / 'worker.log'}")
        return pid
    code = EXIT_INTERRUPTED
    try:
        os.setsid()
        # b4 reads our stdout and stderr to their end: no copy of them (the command's saved
        # stdout included) may stay open in the worker; only the lock's descriptor does
        held = lock.fileno()
        os.closerange(3, held)
        os.closerange(held + 1, os.sysconf("SC_OPEN_MAX"))
        log = os.open(k.state_dir / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        state = _run_locked(req, found, k)
        code = int(state["exit_code"])
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# ---------------------------------------------------------------- shaping

def _outcome(state: dict, k: _Key) -> Outcome:
    results = build = perf = None
    rdir, bdir = Path(state.get("results_dir") or ""), Path(state.get("build_dir") or "")
    if state.get("results_dir") and has_results(rdir):
        results = load_results(rdir).data
    if state.get("build_dir") and has_build(bdir):
        build = load_build(bdir).data
    # the perf hook: `zstest compare --perf ... --out <state dir>/perf` leaves perf.json there
    for candidate in (k.state_dir / "perf" / "perf.json", rdir / "perf.json"):
        if state.get("results_dir") and candidate.is_file():
            perf = read_object(candidate)
            break
    running = state.get("status") == "running"
    return Outcome(exit_code=None if running else state.get("exit_code"),
                   error=str(state.get("error") or ""), results=results, build=build,
                   perf=perf, coverage_asked=bool(state.get("coverage")), url=k.url,
                   source=str(state.get("source") or ""),
                   notes=[str(n) for n in state.get("notes") or []])


def _entries(state: dict, k: _Key, found: FoundSeries) -> Tuple[List[dict], int]:
    outcome = _outcome(state, k)
    rdir = Path(state["results_dir"]) if state.get("results_dir") else None
    code = EXIT_OK if outcome.exit_code is None else int(outcome.exit_code)
    return checks(outcome, found.target_index, rdir if rdir and (rdir / RESULTS_JSON).is_file()
                  else None), code


def _incomplete(found: FoundSeries) -> Optional[str]:
    series = found.series
    if not series.missing:
        return None
    missing = ", ".join(f"{i}/{series.total}" for i in series.missing)
    return (f"not tested: the series is incomplete in {found.how} (missing {missing}); "
            f"zstest tests whole series.")


def check(req: CheckRequest) -> Tuple[List[dict], int]:
    """b4's entries for the message in req, and zstest's exit code for it (b4 reads the
    entries; the code is the series' verdict for scripts)."""
    try:
        found = find_series(req.message, req.topdir, req.lore_url, req.tracking_file)
    except ZstestError as exc:
        return error_check(exc.message), exc.exit_code
    gap = _incomplete(found)
    if gap is not None:
        return error_check(gap, notes=found.notes), EXIT_USAGE
    k = _key(req, found)
    req.log(f"series from {found.how}: v{found.series.revision}, {len(found.series.patches)} "
            f"patches, patchset {k.patchset[:12]}; state in {k.state_dir}")
    state = _state(k.state_dir)
    if state and state.get("status") == "done" and not req.rerun:
        req.log("reusing the finished run of this patchset and settings")
        return _entries(state, k, found)
    lock = _try_lock(k.state_dir / "run.lock")
    if lock is None:
        if req.background:
            return _entries(state or {"status": "running", "source": found.how}, k, found)
        lock = _wait_lock(k.state_dir / "run.lock", req.wait_s, req.log)
        state = _state(k.state_dir)
        if state and state.get("status") == "done" and not req.rerun:
            lock.close()
            return _entries(state, k, found)
    if req.background:
        save_b4check(k.state_dir, {"status": "running", "source": found.how, "key": k.key,
                                   "notes": found.notes, "started": time.time()})
        _start_worker(req, found, k, lock)
        return _entries(_state(k.state_dir) or {"status": "running"}, k, found)
    try:
        state = _run_locked(req, found, k)
    finally:
        lock.close()
    return _entries(state, k, found)
