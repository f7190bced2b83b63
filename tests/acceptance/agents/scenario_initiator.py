"""The initiator of an AXME example: apply a ScenarioBundle with the official SDK, then
wait for the intent's end. Prints the apply answer, then the terminal event, as JSON lines.

Environment: AXME_BASE_URL, AXME_API_KEY, BUNDLE (a file), IDEMPOTENCY_KEY.
"""

import json
import os
from pathlib import Path

from axme_sdk import AxmeClient, AxmeClientConfig

client = AxmeClient(
    AxmeClientConfig(base_url=os.environ["AXME_BASE_URL"], api_key=os.environ["AXME_API_KEY"])
)
bundle = json.loads(Path(os.environ["BUNDLE"]).read_text())
applied = client.apply_scenario(bundle, idempotency_key=os.environ["IDEMPOTENCY_KEY"])
print(json.dumps(applied), flush=True)
print(json.dumps(client.wait_for(applied["intent_id"], timeout_seconds=90)), flush=True)
