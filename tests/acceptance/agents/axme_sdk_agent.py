"""An agent written against the official AXME SDK only, as it would run on AXME's cloud.

The daemon's supervisor gives it AXME_BASE_URL (its loopback TCP listener), AXME_API_KEY
(this process's key) and AXME_AGENT. A payload with `hang` makes the first delivery hang,
so a test can SIGKILL the process in the middle of it.
"""

import os
import time

from axme_sdk import AxmeClient, AxmeClientConfig

client = AxmeClient(
    AxmeClientConfig(base_url=os.environ["AXME_BASE_URL"], api_key=os.environ["AXME_API_KEY"])
)
print(f"axme sdk agent listening on {os.environ['AXME_AGENT']}", flush=True)

for delivery in client.listen(os.environ["AXME_AGENT"]):
    intent_id = delivery["intent_id"]
    intent = client.get_intent(intent_id)
    payload = intent.get("payload") or {}
    if payload.get("hang") and intent["delivery_attempt"] == 1:
        print(f"hanging on {intent_id}", flush=True)
        time.sleep(60)  # the test SIGKILLs us here
    client.resume_intent(intent_id, {"action": "complete", "echo": payload})
