"""`zstest doctor`."""

import json

import click

from ..arch import known_arches
from ..doctor import run_doctor
from ..errors import EXIT_OK, EXIT_PREREQ
from ..toolchain import known_toolchains


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-accel-probe", is_flag=True, help="Skip the KVM probe (it boots QEMU briefly).")
@click.option("--arch", "arch", type=click.Choice(known_arches()), default=None,
              help="Also check what building and booting this architecture needs (its cross "
                   "compiler, QEMU, static libc and Debian's packages of its userland).")
@click.option("--toolchain", type=click.Choice(known_toolchains()), default=None,
              help="Also check what `--toolchain NAME` builds with (its compiler and linker for "
                   "the arch, and the apt line that installs them).")
def doctor(as_json: bool, no_accel_probe: bool, arch, toolchain) -> int:
    """Check host prerequisites and probe the accelerator; exit 6 when something is missing."""
    report = run_doctor(probe_accel=not no_accel_probe, arch=arch, toolchain=toolchain)
    if as_json:
        click.echo(json.dumps({
            "checks": [c.__dict__ for c in report.checks],
            "missing": [c.name for c in report.missing],
            "apt": report.apt_line,
            "accel": report.accel.__dict__ if report.accel else None,
        }, indent=2))
    else:
        for c in report.checks:
            state = f"found    {c.where}" if c.found else f"MISSING  (apt package {c.package})"
            click.echo(f"  {c.name:<26} {state}")
        if report.accel is not None:
            click.echo(f"  {'accelerator':<26} {report.accel.name}: {report.accel.reason}")
        if report.missing:
            click.echo(f"\n{len(report.missing)} prerequisite(s) missing; install them with:\n"
                       f"  {report.apt_line}")
            for c in report.missing:
                if c.package.startswith("dpkg "):
                    click.echo(f"  and first: {c.package}")
        else:
            click.echo("\nAll prerequisites found.")
    return EXIT_PREREQ if report.missing else EXIT_OK


COMMANDS = [doctor]
