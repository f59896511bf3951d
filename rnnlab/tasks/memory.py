"""Short-term memory capacity (Jaeger, 2002, "Short term memory in echo state networks", GMD Report 152): the
input u[t] is i.i.d., the targets are its delayed copies u[t-k] for k = 1..K, and

    MC = sum_k r^2(u[t-k], z_k[t]),    r = Pearson correlation, z_k = the model's (best linear, for a reservoir's
                                        ridge readout) reconstruction of u[t-k], on held-out steps.

A series task with one more metric, `memory_capacity` (max): val/ and test/ score the readout fit on train. MC <= N
for N units (Jaeger, 2002). The built-in dataset `memory_capacity` (`data.max_delay` = K) generates the data.
"""

from __future__ import annotations

import numpy as np

from rnnlab.data.taskdata import DataError
from rnnlab.tasks.base import add, longest_sequences
from rnnlab.tasks.series import SeriesRegression


class MemoryCapacity(SeriesRegression):
    """Series regression onto the delayed inputs, scored by the summed squared correlation of each delay."""

    name = "memory_capacity"
    directions = {**SeriesRegression.directions, "memory_capacity": "max"}

    def check_data(self, cfg, data):
        """Besides the washout: a delay as long as a split asks, at each of its steps, for an input from before the
        split (which its reservoir never saw)."""
        super().check_data(cfg, data)
        delays = data.output_size
        field_path = "data.max_delay" if cfg.data.source == "builtin" else "data.target_column"
        for name, steps in longest_sequences(data).items():
            if steps <= delays:
                raise DataError(
                    field_path,
                    f"{delays} delays do not fit the {name} split's {steps} steps: the inputs u[t-k] of delays "
                    f"k >= {steps} lie before the split at every step (its reservoir never saw them); use fewer "
                    "delays than the split has steps, or lengthen it (data.num_samples, the split's fraction)",
                )

    def accumulate(self, sums, outputs, targets, lengths, warmup=0):
        n = super().accumulate(sums, outputs, targets, lengths, warmup)
        z, y = (t.double().cpu().numpy() for t in self.select(outputs, targets, lengths, warmup))
        add(sums, steps=float(len(y)))
        for key, value in {"z": z, "yk": y, "zz": z * z, "yy": y * y, "zy": z * y}.items():
            sums[f"mc_{key}"] = sums.get(f"mc_{key}", 0.0) + value.sum(axis=0)  # one sum per delay
        return n

    def summarise(self, sums, loss, n, char_level):
        out = super().summarise(sums, loss, n, char_level)
        out["memory_capacity"] = memory_capacity(sums)
        return out


def memory_capacity(sums: dict) -> float:
    """sum over delays of r^2 from the per-delay sums of z, y, z^2, y^2 and z y over the scored steps."""
    m = sums.get("steps", 0.0)
    if m < 2:
        return 0.0
    z, y = sums["mc_z"], sums["mc_yk"]
    covariance = m * sums["mc_zy"] - z * y
    variance = (m * sums["mc_zz"] - z * z) * (m * sums["mc_yy"] - y * y)
    r2 = np.where(variance > 0, covariance**2 / np.where(variance > 0, variance, 1.0), 0.0)
    return float(r2.sum())
