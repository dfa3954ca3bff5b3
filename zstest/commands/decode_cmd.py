"""`zstest decode`: print a results dir's (or a console log's) splats decoded to file:line and patches."""

import json
from pathlib import Path
from typing import List, Optional, Tuple

import click

from ..decode import Decoded, Decoder, decode_console, format_decoded, recorded_or_decode, \
    results_splats
from ..errors import EXIT_OK, BadInput
from ..fsutil import write_output
from ..textsafe import printable
from ..manifests import has_build, has_results, load_results


def decode_target(target: Path, build: Optional[Path]) -> List[Tuple[str, Decoded]]:
    """(test name or "", decoded splat) for a results directory or a console log."""
    if target.is_dir():
        if not has_results(target):
            raise BadInput(f"{target} holds no results.json: give a results directory or a console log.")
        results = load_results(target)
        build_dir = build or results.build_dir
        out = []
        decoders: List[Decoder] = []

        def decoder() -> Decoder:       # one per command: it caches what it read
            if not decoders:
                decoders.append(Decoder(Path(build_dir) if build_dir else None))
            return decoders[0]
        for test, splat in results_splats(results.data, target):
            if build is None:
                out.append((test, recorded_or_decode(splat, decoder)))
            else:
                out.append((test, decoder().decode(splat)))
        return out
    if not target.is_file():
        raise BadInput(f"{target} does not exist: give a results directory or a console log.")
    if build is None and has_results(target.parent):
        # a results dir's console.log: decode against the build that ran it
        build = load_results(target.parent).build_dir
    from ..evidence import console_lines
    try:    # streamed, each line bounded: a console log may be any size
        return [("", decoded) for decoded in decode_console(console_lines(target), build)]
    except OSError as exc:
        raise BadInput(f"cannot read {target}: {exc.strerror}.") from None


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
    if json_file is not None and json_file.is_dir():
        raise BadInput(f"--json {json_file} is a directory; give a file name.")
    found = decode_target(target, build)
    if not found:
        click.echo(printable(f"no splats in {target}"))
    for i, (test, decoded) in enumerate(found):
        if i:
            click.echo("")
        lines = [f"[{decoded.kind}] {decoded.title}"] + ([f"  during {test}"] if test else [])
        lines += format_decoded(decoded, width=100)
        lines += [f"  note: {note}" for note in decoded.notes]
        # console text and results.json reach the terminal: no escape sequence gets through
        click.echo(printable("\n".join(lines)))
    if json_file is not None:
        write_output(json_file, json.dumps([{"test": t, **d.to_dict()} for t, d in found],
                                           indent=2) + "\n", "the decoded splats to")
    return EXIT_OK


COMMANDS = [decode]
