"""Fault injection for zstest's own tests: each test here breaks the guest on purpose.

Selected by `--suite faults -k NAME`; never part of a kernel's verdict.
"""


def test_sleep(guest):
    """Blocks for a long time: for Ctrl-C, SIGTERM and run-timeout tests."""
    guest.run("sleep 3600", timeout=7200)


def test_panic(guest):
    """The kernel panics mid-test (sysrq c): the run must end at once, as failed."""
    guest.run("echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger", timeout=120)


def test_sshd_killed(guest):
    """The SSH server dies mid-test: the run reports a lost guest, it does not hang."""
    guest.run("killall dropbear; sleep 30", timeout=120)


def test_after(guest):
    """Runs after a fault only if the run wrongly went on."""
    assert guest.check("echo alive").strip() == "alive"
