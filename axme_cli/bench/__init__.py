"""`axme bench`'s workloads and its bundled no-op agent (`agent.py`), shipped in the wheel.

The agent is run as a script by the daemon's supervisor: `python <path of agent.py>`. It
spells out its intent types itself; keep them equal to the names here.
"""

from __future__ import annotations

from pathlib import Path

#: The script every bench agent runs (one address per workload, all the same script).
AGENT_SCRIPT = Path(__file__).resolve().parent / "agent.py"
PIPELINE_TYPE = "intent.bench.pipeline.v1"
CRASH_TYPE = "intent.bench.crash.v1"
APPROVAL_TYPE = "intent.bench.approval.v1"
LONG_TYPE = "intent.bench.long.v1"
#: Where, in the agent's `AXME_BENCH_DIR`, every real step execution is appended as a JSON line.
RUNS_FILE = "runs.jsonl"
