"""`axme demo`'s bundled example agent (`pipeline_agent.py`), shipped in the wheel.

The agent is run as a script by the daemon's supervisor: `python <path of pipeline_agent.py>`.
It spells out its address, intent type and runs file itself, so that it reads as a
self-contained example; keep them equal to the names here.
"""

from __future__ import annotations

from pathlib import Path

#: The script the demo registers as `agent://axme/demo/pipeline`.
PIPELINE_AGENT = Path(__file__).resolve().parent / "pipeline_agent.py"
ADDRESS = "agent://axme/demo/pipeline"
INTENT_TYPE = "intent.demo.pipeline.v1"
#: Where, in the agent's `AXME_DEMO_DIR`, every real step execution is appended as a JSON line.
RUNS_FILE = "runs.jsonl"
STEPS = ("extract", "transform", "load")
