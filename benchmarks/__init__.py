"""rnnlab's benchmark suite: `python -m benchmarks [--quick]` prints one markdown table of ratios against peers.

Each section module has `run(quick: bool) -> Section`; `benchmarks/run.py` pins threads and runs them in order.
"""
