"""`zstest watch`: a per-series bot on a public-inbox server (lore or any other).

feed.py      what the server lists as new (Atom: a dfn: search, or new.atom)
threads.py   is a thread a zsmalloc/zram series (by its diffs), complete, its patchset hash
state.py     the SQLite state file (one transaction per change)
bot.py       poll -> decide -> queue -> run one series at a time; the loop and --once
execute.py   one series through the pipeline; report.txt, reply.txt, kcidb.json
perfstep.py  --perf: a passed series against its base, as compare --perf measures it
perfrun.py   the perf step in the bot's run: skipped, recorded, resumed after a stop
reply.py     the reply draft (Tested-by or the failure, in `zstest report`'s layout)
cells.py     --matrix (cells for the CI templates) and --collect (their results back)
page.py      the state as rows of the results page (zstest/htmlpage.py)
"""

from .bot import STATE_FILE, WatchConfig, Watcher  # noqa: F401
from .execute import RunConfig  # noqa: F401
