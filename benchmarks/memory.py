"""Section 6: peak RSS of a trial in a fresh subprocess, against the bytes of its model, optimiser state and data,
and against a subprocess that only imports rnnlab and loads the same data (the interpreter + torch baseline)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

from benchmarks.timing import Goal, Section, table

SCRIPT = """
import json, resource, sys, tempfile
from benchmarks.harness import make_config
from rnnlab.trial import prepare_data, run_trial
from rnnlab.models import build_model
cfg = make_config(2)
data = prepare_data(cfg)
tensors = [t for s in (data.train, data.val, data.test) for t in (s.inputs, s.lengths, s.targets)]
data_bytes = sum(t.numel() * t.element_size() for t in tensors)
model = build_model(cfg, data.input_size, data.vocab_size, data.output_size, data.task)
params = sum(p.numel() * p.element_size() for p in model.parameters())
if sys.argv[1] == "trial":
    with tempfile.TemporaryDirectory() as tmp:
        run_trial(cfg, None, tmp + "/run", data=data)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak": peak, "params": params, "data": data_bytes}))
"""


def measure(mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
        env=None,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> Section:
    import os

    from benchmarks.run import ROOT

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    base, trial = measure("baseline"), measure("trial")
    model_state = 4 * trial["params"]  # weights, gradients, Adam's two moments
    extra = trial["peak"] - base["peak"]
    mb = 2**20
    detail = table(
        ["measure", "MiB"],
        [
            ["peak RSS, imports + data only", base["peak"] / mb],
            ["peak RSS, whole trial", trial["peak"] / mb],
            ["trial minus baseline", extra / mb],
            ["model + grads + Adam state", model_state / mb],
            ["prepared data tensors", trial["data"] / mb],
        ],
    )
    goal = Goal(
        "trial RSS above baseline / (model + optimiser state + data)",
        extra / (model_state + trial["data"]),
        "<= 10x",
        "informational: activations, allocator caches and checkpoints make up the rest",
    )
    return Section("Memory", [goal], detail)
