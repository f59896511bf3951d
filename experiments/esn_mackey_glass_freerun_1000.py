"""Free-running Mackey-Glass forecast with a 1000-unit ESN and more training data: NRMSE84 <= 2e-3.

experiments/esn_mackey_glass_freerun.py (300 units, 1600 train points) with 1000 units and a 5000-point series:
4600 points train the readout, the last 400 test it (8%, as many as the 300-unit experiment's 20% of 2000).
    rnnlab run experiments/esn_mackey_glass_freerun_1000.py      -> test/free_run_nrmse = 1.7e-3 (seed 0)
Seeds 0-4: 1.65e-3, 7.3e-4, 1.1e-3, 1.8e-3, 1.4e-3 (float64). With the 300-unit experiment's 2000 points the
same reservoirs give 1.3e-3 to 4.6e-3 (two of five <= 2e-3). The reference for NRMSE84 with 1000 units is
Jaeger & Haas (2004), "Harnessing nonlinearity", Science 304:78-80 (its abstract: accuracy "improved by a factor
of 2400 over previous techniques"); the 10^-4.2 quoted from it (100 runs) could not be checked against its text.
"""

from pathlib import Path

from rnnlab.experiment import extend

config = extend(
    Path(__file__).with_name("esn_mackey_glass_freerun.py"),
    {"model.esn.units": 1000, "data.num_samples": 5000, "data.test_fraction": 0.08},
)
