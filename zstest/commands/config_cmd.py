"""`zstest config show`: every effective setting and where it came from."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import EXIT_OK


@click.group("config")
def config_group() -> None:
    """The settings from zstest.toml and ~/.config/zstest/config.toml."""


@config_group.command("show")
@click.option("--kernel", type=click.Path(path_type=Path),
              help="Show the settings as a command given this --kernel would see them.")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
def show(kernel, as_json) -> int:
    """Print every effective value and its source: option, env, a file, or default."""
    from .. import settings
    from ..cli import cli
    loaded = settings.current()
    rows = settings.effective(cli, loaded)
    if as_json:
        click.echo(json.dumps({"files": [str(f) for f in loaded.files],
                               "settings": [{"key": k, "value": v, "source": s}
                                            for k, v, s in rows]}, indent=2))
        return EXIT_OK
    files = ", ".join(map(str, loaded.files)) or "none"
    click.echo(f"# files read (lowest first): {files}")
    click.echo(f"# user file: {settings.user_config_file()}")
    width = max(len(k) for k, _, _ in rows)
    for key, value, source in rows:
        click.echo(f"{key:<{width}} = {value}  ({source})")
    return EXIT_OK


COMMANDS = [config_group]
