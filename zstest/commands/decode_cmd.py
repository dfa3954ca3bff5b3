"""`zstest decode`: print a results dir's (or a console log's) splats decoded to file:line and patches."""

import json
from pathlib import Path
from typing import List, Optional, Tuple

import click

from ..decode import Decoded, Decoder, decode_console, format_decoded, results_splats
from ..errors import EXIT_OK, BadInput
from ..manifests import has_build, has_results, load_results


def decode_target(target: Path, build: Optional[Path]) -> List[Tuple[str, Decoded]]:
    """(test name or "", decoded splat) for a results directory or a console log."""
    if target.is_dir():
        if not has_results(target):
            raise BadInput(f"{target} holds no results.json: give a results directory or a console log.")
        results = load_results(target)
        build_dir = build or results.build_dir
        decoder = None
        out = []
        for test, splat in results_splats(results.data, target):
            if build is None and isinstance(splat.get("decoded"), dict):
                out.append((test, Decoded.from_dict(splat["decoded"])))
                continue
            decoder = decoder or Decoder(Path(build_dir) if build_dir else None)
            out.append((test, decoder.decode(splat)))
        return out
    if not target.is_file():
        raise BadInput(f"{target} does not exist: give a results directory or a console log.")
    if build is None and has_results(target.parent):
        # a results dir's console.log: decode against the build that ran it
        build = load_results(target.parent).build_dir
    try:
        text = target.read_text(errors="replace")
    except OSError as exc:
        raise BadInput(f"cannot read {target}: {exc.strerror}.") from None
    return [("", decoded) for decoded in decode_console(text.splitlines(), build)]


@click.command()
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--build", "build", type=click.Path(path_type=Path),
              help="Build directory to decode against (default: the one results.json names).")
@click.option("--json", "json_file", type=click.Path(path_type=Path),
              help="Also write the decoded splats to this file as JSON.")
def decode(target: Path, build: Optional[Path], json_file: Optional[Path]) -> int:
    """Decode the splats of RESULTS_DIR or CONSOLE_LOG to file:line and the patches that touched them."""
    if build is not None and not has_build(build):
        raise BadInput(f"--build {build} is not a build directory (no build.json).")
    found = decode_target(target, build)
    if not found:
        click.echo(f"no splats in {target}")
    for i, (test, decoded) in enumerate(found):
        if i:
            click.echo("")
        click.echo(f"[{decoded.kind}] {decoded.title}")
        if test:
            click.echo(f"  during {test}")
        for line in format_decoded(decoded, width=100):
            click.echo(line)
        for note in decoded.notes:
            click.echo(f"  note: {note}")
    if json_file is not None:
        json_file.write_text(json.dumps([{"test": t, **d.to_dict()} for t, d in found], indent=2) + "\n")
    return EXIT_OK


COMMANDS = [decode]
