"""Section 2: rnnlab's ESN against reservoirpy 0.4.2 on the same reservoir (W, W_in, b) and the same data.

One-step Mackey-Glass prediction (T = 10,000, float64 on both): states harvested and the ridge readout fitted are
timed apart; NRMSE on the last 20% of the series. reservoirpy gets W as scipy CSR (its own default for a sparse
reservoir) and fits with its Ridge node (X^T X accumulated, then a symmetric solve), as rnnlab does.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch

from benchmarks.timing import Goal, Section, interleaved_medians, table
from rnnlab.data.builtin import integrate_mackey_glass
from rnnlab.models import model_config
from rnnlab.models.esn import ESN
from rnnlab.models.sequence import ridge_regression

RIDGE, WASHOUT = 1e-6, 100


def mackey_glass(steps: int) -> np.ndarray:
    history = 1.2 + 0.2 * (np.random.default_rng(0).random(17) - 0.5)
    series = integrate_mackey_glass(history, steps + 1)
    return (series - series.mean()) / series.std()


def nrmse(prediction: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((prediction - target) ** 2)) / target.std())


def compare(units: int, steps: int, repeats: int) -> dict[str, float]:
    import scipy.sparse
    from reservoirpy.nodes import Reservoir, Ridge

    cfg = model_config("esn")
    cfg.esn = dataclasses.replace(cfg.esn, units=units, spectral_radius=1.25, leak_rate=0.3, density=0.1)
    torch.manual_seed(0)
    encoder = ESN(cfg, 1)
    layer = encoder.layers[0][0]
    series = mackey_glass(steps)
    u_TD, y_TD = series[:-1, None], series[1:, None]
    u = torch.from_numpy(u_TD)[None]
    lengths = torch.tensor([steps])
    split = WASHOUT + int(0.8 * (steps - WASHOUT))

    def theirs_reservoir():
        return Reservoir(
            lr=0.3,
            W=scipy.sparse.csr_matrix(layer.weight.numpy()),
            Win=layer.input_weight.numpy(),
            bias=layer.bias.numpy(),
        )

    ours_states = encoder(u, lengths)[0][0]
    theirs_states = theirs_reservoir().run(u_TD)
    # no warm-up: each harvest is 10k steps, each fit a Gram over 10k rows
    seconds = interleaved_medians(
        {
            "ours_harvest": lambda: encoder(u, lengths),
            "theirs_harvest": lambda: theirs_reservoir().run(u_TD),
            "ours_fit": lambda: ridge_regression(
                ours_states[WASHOUT:split], torch.from_numpy(y_TD[WASHOUT:split]), RIDGE
            ),
            "theirs_fit": lambda: Ridge(ridge=RIDGE).fit(theirs_states[WASHOUT:split], y_TD[WASHOUT:split]),
        },
        repeats,
        warmup=0,
    )
    weight, bias = ridge_regression(ours_states[WASHOUT:split], torch.from_numpy(y_TD[WASHOUT:split]), RIDGE)
    ours_pred = (ours_states[split:] @ weight.T + bias).numpy()
    readout = Ridge(ridge=RIDGE).fit(theirs_states[WASHOUT:split], y_TD[WASHOUT:split])
    theirs_pred = readout.run(theirs_states[split:])
    return {
        **seconds,
        "ours_nrmse": nrmse(ours_pred, y_TD[split:]),
        "theirs_nrmse": nrmse(theirs_pred, y_TD[split:]),
        "states_diff": float(np.abs(ours_states.numpy() - theirs_states).max()),
    }


def run(quick: bool) -> Section:
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    sizes, steps, repeats = ((500,), 10_000, 1) if quick else ((500, 1000, 2000), 10_000, 3)
    rows, goals = [], []
    for units in sizes:
        r = compare(units, steps, repeats)
        ours, theirs = r["ours_harvest"] + r["ours_fit"], r["theirs_harvest"] + r["theirs_fit"]
        rows.append(
            [
                units,
                r["ours_harvest"],
                r["theirs_harvest"],
                r["ours_fit"],
                r["theirs_fit"],
                theirs / ours,
                r["ours_nrmse"],
                r["theirs_nrmse"],
                f"{r['states_diff']:.1e}",
            ]
        )
        goals.append(
            Goal(
                f"ESN speed-up vs reservoirpy, harvest + fit (N={units}, T={steps})",
                theirs / ours,
                ">= 3x",
                f"harvest {r['theirs_harvest'] / r['ours_harvest']:.2f}x, fit {r['theirs_fit'] / r['ours_fit']:.2f}x",
            )
        )
        goals.append(
            Goal(
                f"ESN NRMSE / reservoirpy's (N={units})",
                r["ours_nrmse"] / r["theirs_nrmse"],
                "<= 1.1x",
                f"{r['ours_nrmse']:.2e} vs {r['theirs_nrmse']:.2e}",
            )
        )
    header = [
        "N",
        "harvest s (rnnlab)",
        "harvest s (reservoirpy)",
        "fit s (rnnlab)",
        "fit s (reservoirpy)",
        "speed-up",
        "NRMSE rnnlab",
        "NRMSE reservoirpy",
        "max |state diff|",
    ]
    return Section("ESN vs reservoirpy 0.4.2 (float64, one-step Mackey-Glass)", goals, table(header, rows))
