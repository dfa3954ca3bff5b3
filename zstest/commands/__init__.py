"""CLI command groups, one module per stage; each exports COMMANDS."""

import click as _click


def _use_lore_url(ctx, param, value):
    from ..series.lore import set_default_lore_url
    set_default_lore_url(value)
    return value


# One option object for every command that takes a series: it sets the server that message-ids
# and lore URLs are fetched from, for every stage this command runs (build, bisect, mutate...).
lore_url_option = _click.option(
    "--lore-url", "lore_url", default="https://lore.kernel.org/all", show_default=True,
    expose_value=False, callback=_use_lore_url, metavar="URL",
    help="Public-inbox server that message-ids and lore URLs (https://lore.kernel.org/r/<msgid>) "
         "are fetched from; the URL's own host is not contacted.")


def arch_options(f):
    """--arch and --page-size: the arch record the kernel is built for (zstest/arches/), and
    one of its page sizes; the build records both and boot-and-run boots that arch."""
    from ..arch import DEFAULT_ARCH, known_arches
    f = _click.option("--page-size", "page_size", metavar="SIZE",
                      help="The kernel's page size where the arch offers a choice "
                           "(arm64: 4k, 16k, 64k). Default: the arch's.")(f)
    return _click.option("--arch", "arch", type=_click.Choice(known_arches()),
                         default=DEFAULT_ARCH, show_default=True,
                         help="Build for this architecture (cross-built; booted under TCG "
                              "where the host's KVM cannot run it).")(f)


def reproducer_argv(command: str) -> list:
    """This command's arguments as typed, plus every value a config file supplied
    (zstest.toml, config.toml): build.json's reproducer must not depend on those files."""
    import sys

    import click
    from click.core import ParameterSource

    argv = sys.argv[1:]
    typed = argv[argv.index(command) + 1:] if command in argv else []
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return typed
    extra = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or \
                ctx.get_parameter_source(param.name) != ParameterSource.DEFAULT_MAP:
            continue
        value = ctx.params.get(param.name)
        flag = max(param.opts, key=len)
        if param.is_flag:
            if value:
                extra.append(flag)
            continue
        for item in (value if param.multiple else [value]):
            if item is not None:
                extra += [flag, str(item)]
    return typed + extra
