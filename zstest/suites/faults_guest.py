"""Fault injection for zstest's own tests: each test here breaks the guest on purpose.

Selected by `--suite faults -k NAME`; never part of a kernel's verdict.
"""

from zstest.suites.lib.fixtures import guest_tools  # noqa: F401

CGROUP = "/sys/fs/cgroup"
OOM_GROUP = f"{CGROUP}/zstest-oom"


def test_sleep(guest):
    """Blocks for a long time: for Ctrl-C, SIGTERM and run-timeout tests."""
    guest.run("sleep 3600", timeout=7200)


def test_panic(guest):
    """The kernel panics mid-test (sysrq c): the run must end at once, as failed."""
    guest.run("echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger", timeout=120)


def test_sshd_killed(guest):
    """The SSH server dies mid-test: the run reports a lost guest, it does not hang."""
    guest.run("killall dropbear; sleep 30", timeout=120)


def test_oom_killed(guest, guest_tools):
    """The OOM killer ends the test's process (96 MiB touched in a 32 MiB memory cgroup, no
    swap): the test fails saying so, with the kernel's OOM report in its log; the run goes on."""
    guest.run(f"grep -q ' {CGROUP} cgroup2' /proc/mounts || mount -t cgroup2 none {CGROUP}")
    guest.check(f"echo +memory > {CGROUP}/cgroup.subtree_control")
    guest.check(f"mkdir -p {OOM_GROUP} && echo 32M > {OOM_GROUP}/memory.max && "
                f"(echo 0 > {OOM_GROUP}/memory.swap.max || true)")
    try:
        guest.check(f"sh -c 'echo $$ > {OOM_GROUP}/cgroup.procs && "
                    f"exec memtouch --mb 96 --passes 1'", timeout=300)
    finally:
        guest.run(f"rmdir {OOM_GROUP}")


# The kernel's own crash provoker (CONFIG_LKDTM, in the base profile): each write makes the
# kernel under test report one kind of failure, exactly as a buggy patch would.
PROVOKE = "/sys/kernel/debug/provoke-crash/DIRECT"


def _provoke(guest, what: str, setup: str = "", timeout: float = 600):
    return guest.run(f"{setup}echo {what} > {PROVOKE}", timeout=timeout)


def test_lkdtm_oops(guest):
    """A NULL dereference in the kernel (an oops that kills the writing shell): the test fails
    at once with the oops's title; the tests after it run in a fresh guest."""
    _provoke(guest, "EXCEPTION")


def test_lkdtm_bug(guest):
    """BUG(): the kernel's own assertion."""
    _provoke(guest, "BUG")


def test_lkdtm_warning(guest):
    """WARN_ON: the test fails, the kernel stays usable, the next test runs in the same guest."""
    _provoke(guest, "WARNING")


def test_lkdtm_softlockup(guest):
    """A CPU spins with preemption off (the command never returns): the soft-lockup report
    (after 2 * watchdog_thresh s) ends the test, not the command's own timeout."""
    _provoke(guest, "SOFTLOCKUP", setup="echo 1 > /proc/sys/kernel/watchdog_thresh; ")


def test_lkdtm_hung_task(guest):
    """A task sleeps uninterruptibly for ever: the hung-task report ends the test."""
    _provoke(guest, "HUNG_TASK", setup="echo 2 > /proc/sys/kernel/hung_task_timeout_secs; ")


def test_lkdtm_oops_then_slow_cleanup(guest):
    """An oops, then the long cleanup a real test does in `finally` (e.g. onlining memory
    blocks on a kernel that no longer can): the cleanup must not be waited for."""
    try:
        _provoke(guest, "EXCEPTION")
    finally:
        guest.run("sleep 600", timeout=900)


def test_lkdtm_warning_then_wait(guest):
    """A WARNING, then a long wait: for Ctrl-C after the kernel complained."""
    _provoke(guest, "WARNING")
    guest.run("sleep 3600", timeout=7200)


def test_after(guest):
    """Runs after a fault: in a fresh guest after a crash, in the same one after a WARNING."""
    assert guest.check("echo alive").strip() == "alive"
