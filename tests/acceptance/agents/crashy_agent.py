"""An agent that dies inside its handler until it is fixed.

At start it reads the file `mode` in its working directory: `crash` makes every delivery
kill the process (`os._exit(1)`, as a segfault or an OOM kill would), `ok` completes.
"""

import os
from pathlib import Path

from axme_cli.agent import Agent

agent = Agent(os.environ["AXME_AGENT"])
MODE = Path("mode").read_text().strip()
print(f"crashy agent starting in mode {MODE!r}", flush=True)


@agent.handler("intent.test.crashy.v1")
def handle(ctx):
    if MODE == "crash":
        print(f"crashing on {ctx.intent_id} (attempt {ctx.attempt})", flush=True)
        os._exit(1)
    return {"fixed": True, "attempt": ctx.attempt}


agent.run()
