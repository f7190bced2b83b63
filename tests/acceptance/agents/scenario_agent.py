"""An AXME example agent, as AXME's examples write one: `listen` on its scenario address
with the key `axme scenarios apply` provisioned, `get_intent`, `resume_intent`.

Environment: AXME_BASE_URL, AXME_API_KEY, AXME_AGENT_ADDRESS (a bare name, as the examples
use), MARK (a directory: one file per resume it sent, so a test counts them). A payload
with `hang` makes the agent stop before it resumes (the test SIGKILLs it there) unless
HANG_DONE is set; `ready: false` makes it fail its step.
"""

import os
import time
import uuid
from pathlib import Path

from axme_sdk import AxmeClient, AxmeClientConfig

client = AxmeClient(
    AxmeClientConfig(base_url=os.environ["AXME_BASE_URL"], api_key=os.environ["AXME_API_KEY"])
)
address = os.environ["AXME_AGENT_ADDRESS"]
marks = Path(os.environ["MARK"])
print(f"listening on {address}", flush=True)

for delivery in client.listen(address):
    if delivery.get("status") not in ("DELIVERED", "CREATED", "IN_PROGRESS"):
        continue
    intent_id = delivery["intent_id"]
    intent = client.get_intent(intent_id)
    payload = intent.get("payload") or {}
    (marks / f"got-{intent_id}-{uuid.uuid4().hex[:6]}").touch()
    if payload.get("hang") and not os.environ.get("HANG_DONE"):
        print(f"hanging on {intent_id}", flush=True)
        time.sleep(120)  # the test SIGKILLs us here, before any resume
    action = "complete" if payload.get("ready", True) else "fail"
    client.resume_intent(
        intent_id, {"action": action, "ready": action == "complete"}, owner_agent=address
    )
    (marks / f"resumed-{intent_id}-{uuid.uuid4().hex[:6]}").touch()
    print(f"resumed {intent_id} ({action})", flush=True)
