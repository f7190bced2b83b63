"""An agent that only holds what the supervisor gave it.

It writes its API key, worker id, address and the TCP URL to `keys/<worker id>.json` in its
working directory, then sleeps: a test acts as this agent over TCP with its real key (and
tries what an attacker holding that key would try).
"""

import json
import os
import time
from pathlib import Path

names = ("AXME_API_KEY", "AXME_WORKER_ID", "AXME_AGENT", "AXME_BASE_URL")
held = {name: os.environ[name] for name in names}
out = Path("keys")
out.mkdir(exist_ok=True)
tmp = out / f".{held['AXME_WORKER_ID']}.tmp"
tmp.write_text(json.dumps(held))
tmp.rename(out / f"{held['AXME_WORKER_ID']}.json")
while True:
    time.sleep(60)
