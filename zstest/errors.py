"""Exit codes shared by every command, and the errors that carry them.

A stage raises ZstestError (or a subclass) with one clear sentence; the CLI
prints it and exits with its code. No stage calls sys.exit itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_TEST_FAILED = 1      # a test failed or the kernel logged a splat
EXIT_USAGE = 2            # usage or bad input
EXIT_APPLY = 3            # a patch did not apply
EXIT_BUILD = 4            # the build failed (or config drift)
EXIT_BOOT = 5             # the guest did not boot or could not be reached
EXIT_PREREQ = 6           # host prerequisites missing
EXIT_INTERRUPTED = 130    # Ctrl-C or SIGTERM


class ZstestError(Exception):
    """An error a user can hit: one sentence, one exit code.

    The optional fields are what a caller may need beyond the sentence; every one is declared
    here (None when it does not apply), so readers use the attribute, never getattr:
    build_dir (a build that failed, or that the error happened in: cell.json and the
    pipeline's outcome point there), results_dir (a run's results, written before the error),
    splat (the kernel's own evidence as a splat dict: a boot that hung in an initcall),
    result (what was done before the error: tree.ApplyResult of a series that stopped part
    way), http_status (a server's HTTP answer).
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str, exit_code: "int | None" = None, detail: str = "", *,
                 build_dir: "Path | None" = None, results_dir: "Path | None" = None,
                 splat: "dict | None" = None, result: Any = None,
                 http_status: "int | None" = None):
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code
        # Extra lines (a log tail, git's own message) shown after the sentence.
        self.detail = detail
        self.build_dir = build_dir
        self.results_dir = results_dir
        self.splat = splat
        self.result = result
        self.http_status = http_status


class BadInput(ZstestError):
    exit_code = EXIT_USAGE


class ApplyFailed(ZstestError):
    exit_code = EXIT_APPLY


class BuildFailed(ZstestError):
    exit_code = EXIT_BUILD


class BootFailed(ZstestError):
    exit_code = EXIT_BOOT


class PrereqMissing(ZstestError):
    exit_code = EXIT_PREREQ


class Interrupted(KeyboardInterrupt):
    """Raised from the SIGTERM handler so cleanup runs as for Ctrl-C."""


class Finished(int):
    """A command's exit code with the directories it wrote (None: none of that kind), for what
    wraps the command (`--cell` writes cell.json into them); the CLI exits with the code."""

    def __new__(cls, code: int, build_dir: "str | Path | None" = None,
                results_dir: "str | Path | None" = None) -> "Finished":
        done = super().__new__(cls, code)
        done.build_dir = Path(build_dir) if build_dir is not None else None
        done.results_dir = Path(results_dir) if results_dir is not None else None
        return done
