"""The chain build -> boot -> suite -> decode, with its one fallback policy.

`zstest run`, compare's series mode, bisect (and, through `run --cell`, matrix cells) all go
through run_pipeline(): it builds (BuildRequest), decides whether there is a kernel to boot,
boots it and runs the suite (BootRunRequest; the runner decodes every splat at the end of
the run) and says what the whole thing exits with. Commands parse options, present the run
and call it; they hold no policy.

The policy: a build that fails leaves nothing to boot — unless `--each` found a middle patch
that does not build while the whole series does ("bootable" in build.json): that kernel is
booted and tested anyway, and the outcome still exits 4 when its tests pass (the tests' own
exit code when they do not). A patch that does not apply is exit 3.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, ContextManager, Optional

# The requests and the stage entry points, re-exported: callers import the chain from here.
from .build import BuildRequest, BuildResult, last_build_dir, run_build  # noqa: F401
from .errors import EXIT_OK, ApplyFailed, BadInput, BootFailed, BuildFailed, ZstestError
from .manifests import load_build
from .options import with_command
from .results import RunResults
from .runner import BootRunRequest, boot_and_run, default_results_dir  # noqa: F401

__all__ = ["BootRunRequest", "BuildRequest", "PipelineOutcome", "PipelineRequest", "boot_and_run",
           "default_results_dir", "is_bootable", "last_build_dir", "run_build", "run_pipeline"]


@dataclass
class PipelineRequest:
    build: BuildRequest
    run: BootRunRequest                     # build_dir and a missing out are filled in here
    echo: Callable[[str], None] = print     # the build's own lines
    # Entered around boot-and-run with the final request and the outcome so far (the build's
    # result, or its error when a kernel is booted anyway): how the caller presents the run
    # (where stdout goes, what is printed before and after). Presentation, not policy.
    around_run: Optional[Callable[[BootRunRequest, "PipelineOutcome"], ContextManager]] = None
    # --affected: once the build is known, only the tests its changes reach (affected.py)
    affected: bool = False


@dataclass
class PipelineOutcome:
    build: Optional[BuildResult] = None          # None when the build raised
    build_dir: Optional[Path] = None             # None when the build never got a directory
    build_error: Optional[ZstestError] = None    # ApplyFailed / BuildFailed
    bootable: bool = False                       # a kernel was booted despite build_error
    results_dir: Optional[Path] = None
    run: Optional[RunResults] = None
    boot_error: Optional[BootFailed] = None      # the guest never came up (results.json says so)

    @property
    def error(self) -> Optional[ZstestError]:
        """The one error sentence the command reports, or None when the tests speak for
        themselves: the boot's; else the build's when no test ran or all of them passed."""
        if self.boot_error is not None:
            return self.boot_error
        if self.build_error is not None and (self.run is None or self.run.exit_code == EXIT_OK):
            return self.build_error
        return None

    @property
    def exit_code(self) -> int:
        error = self.error
        if error is not None:
            return error.exit_code
        return self.run.exit_code if self.run is not None else EXIT_OK


def is_bootable(build_dir: Path) -> bool:
    """A kernel exists in build_dir although the build failed (a middle patch broke it)."""
    try:
        manifest = load_build(build_dir)
    except BadInput:
        return False
    return manifest.bootable and (Path(build_dir) / "bzImage").is_file()


def run_pipeline(req: PipelineRequest) -> PipelineOutcome:
    """Build, boot what can be booted, run the suite; never raises ApplyFailed/BuildFailed/
    BootFailed (they are in the outcome); Ctrl-C and bad input propagate."""
    outcome = PipelineOutcome()
    try:
        outcome.build = run_build(req.build, echo=req.echo)
        outcome.build_dir = outcome.build.build_dir
    except (ApplyFailed, BuildFailed) as exc:
        outcome.build_error = exc
        outcome.build_dir = exc.build_dir
        if outcome.build_dir is None or not is_bootable(outcome.build_dir):
            return outcome
        outcome.bootable = True
    run_req = replace(req.run, build_dir=Path(outcome.build_dir),
                      out=Path(req.run.out) if req.run.out else default_results_dir())
    run_req = with_command(run_req, req.build)
    outcome.results_dir = run_req.out
    if req.affected:
        from .affected import narrow
        run_req = narrow(run_req)
    around = req.around_run(run_req, outcome) if req.around_run else contextlib.nullcontext()
    try:
        with around:
            outcome.run = boot_and_run(run_req)
    except BootFailed as exc:
        outcome.boot_error = exc
    return outcome
