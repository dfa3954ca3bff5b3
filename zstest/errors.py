"""Exit codes shared by every command, and the errors that carry them.

A stage raises ZstestError (or a subclass) with one clear sentence; the CLI
prints it and exits with its code. No stage calls sys.exit itself.
"""

EXIT_OK = 0
EXIT_TEST_FAILED = 1      # a test failed or the kernel logged a splat
EXIT_USAGE = 2            # usage or bad input
EXIT_APPLY = 3            # a patch did not apply
EXIT_BUILD = 4            # the build failed (or config drift)
EXIT_BOOT = 5             # the guest did not boot or could not be reached
EXIT_PREREQ = 6           # host prerequisites missing
EXIT_INTERRUPTED = 130    # Ctrl-C or SIGTERM


class ZstestError(Exception):
    """An error a user can hit: one sentence, one exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, exit_code: "int | None" = None, detail: str = ""):
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code
        # Extra lines (a log tail, git's own message) shown after the sentence.
        self.detail = detail


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
