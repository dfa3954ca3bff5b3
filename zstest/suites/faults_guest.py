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


def test_after(guest):
    """Runs after a fault only if the run wrongly went on."""
    assert guest.check("echo alive").strip() == "alive"
