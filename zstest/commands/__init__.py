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
