"""Run a benchmark worker in its own interpreter and read its result (standard library only)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any


def run_json_worker(command: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    """The JSON object the worker printed on its last stdout line, or ``{"error": ...}`` with
    the end of its stderr when it exited non-zero (the driver reports it and goes on)."""
    done = subprocess.run(list(command), capture_output=True, text=True, env=dict(env))
    if done.returncode != 0:
        return {"error": f"worker exited with {done.returncode}: {done.stderr[-2000:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])
