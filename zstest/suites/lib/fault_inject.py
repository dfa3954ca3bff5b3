"""The kernel's fault injection (failslab, fail_page_alloc) armed for one task at a time.

Knobs live in debugfs (CONFIG_FAULT_INJECTION_DEBUG_FS). Knobs changes are global, so
FaultKnobs records every value it changes and puts each back on exit; with probability 0
(the default) nothing fails anywhere except through a task's own fail-nth.
"""

from __future__ import annotations

import shlex
from typing import Dict

import pytest

DEBUGFS = "/sys/kernel/debug"
# the knobs that must let a test's allocations fail: by default failslab and fail_page_alloc
# skip allocations that may sleep, fail_page_alloc skips highmem and order 0, and each
# failure dumps a stack (verbose 2)
LET_FAIL = {
    "failslab": {"ignore-gfp-wait": "N", "verbose": "0"},
    "fail_page_alloc": {"ignore-gfp-wait": "N", "ignore-gfp-highmem": "N", "min-order": "0",
                        "verbose": "0"},
}


def parse_fail_nth_log(text: str) -> Dict[str, object]:
    """The fail-nth sweep's lines, "try=N ok=0|1 fired=0|1 init=I size=S", summed up.

    ok=0: the write failed (the device must be left uninitialised: init=0 size=0, else
    N is in `dirty`); ok=1 fired=1: a failure was injected and tolerated (`tolerated`);
    ok=1 fired=0: the N-th allocation was never reached, the path is exhausted
    (`exhausted_at`, 0 when the sweep stopped before)."""
    tries, failed, tolerated, dirty, exhausted = 0, 0, [], [], 0
    for line in text.splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if not {"try", "ok", "fired", "init", "size"} <= set(fields):
            continue
        tries += 1
        n = int(fields["try"])
        if fields["ok"] != "1":
            failed += 1
            if fields["init"] != "0" or fields["size"] != "0":
                dirty.append(n)
        elif fields["fired"] == "1":
            tolerated.append(n)
        else:
            exhausted = n
    return {"attempts": tries, "failed": failed, "tolerated": tolerated, "dirty": dirty,
            "exhausted_at": exhausted}


class FaultKnobs:
    """Set fault-injection knobs for the span of a `with`, then restore them."""

    def __init__(self, guest):
        self.guest = guest
        self.saved: Dict[str, str] = {}

    def require(self, *names: str) -> None:
        for name in names:
            if not self.guest.exists(f"{DEBUGFS}/{name}/probability"):
                pytest.skip(f"no {DEBUGFS}/{name}: the kernel lacks CONFIG_{name.upper()} "
                            f"or CONFIG_FAULT_INJECTION_DEBUG_FS")

    def set(self, name: str, **values) -> None:
        """set("failslab", probability=100, task_filter="Y"): underscores become dashes."""
        for key, value in values.items():
            path = f"{DEBUGFS}/{name}/{key.replace('_', '-')}"
            if path not in self.saved:
                self.saved[path] = self.guest.check(f"cat {path}").strip()
            self.guest.check(f"echo {shlex.quote(str(value))} > {path}")

    def let_fail(self, *names: str) -> None:
        for name in names:
            self.set(name, **{k.replace("-", "_"): v for k, v in LET_FAIL[name].items()})

    def store_with_its_allocation_failing(self, path: str, value: str):
        """echo value > path (a sysfs store) from a shell whose next page allocation after the
        file is opened fails once (fail_page_alloc, this task only): the store's own one.
        Returns the shell's result, once the knobs are back; the failure must have been reached."""
        self.let_fail("fail_page_alloc")
        self.set("fail_page_alloc", task_filter="Y", interval=1, space=0, times=1,
                 probability=100)
        # the sysfs file is opened first: the store's own allocation is the first one to fail
        res = self.guest.run(f"exec 3> {path}; echo 1 > /proc/self/make-it-fail; "
                             f"echo {value} >&3")
        left = int(self.guest.check(f"cat {DEBUGFS}/fail_page_alloc/times").strip())
        self.restore()
        assert left == 0, "precondition: the armed allocation failure was not reached"
        return res

    def restore(self) -> None:
        # probability first: nothing may fail while the other knobs go back
        for path in sorted(self.saved, key=lambda p: not p.endswith("/probability")):
            self.guest.run(f"echo {shlex.quote(self.saved[path])} > {path}")
        self.saved.clear()

    def __enter__(self) -> "FaultKnobs":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


def assert_enomem(res, what: str) -> None:
    """The store failed, and said it was out of memory (the shell's ENOMEM message)."""
    why = res.stderr.lower()
    assert res.exit_status != 0 and ("out of memory" in why or "cannot allocate" in why), \
        f"{what} whose allocation failed: exit {res.exit_status}, {res.stderr.strip()!r}"
