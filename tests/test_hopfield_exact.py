"""The classical Hopfield memory against an exact simulation (integers, fractions.Fraction) over many seeds.

The documented tie rule (a unit whose local field is exactly zero keeps its bit) only fires when the field is
computed exactly: with float32 weights W = C / N, a field that is zero in exact arithmetic came out as +-1.5e-8.
"""

from fractions import Fraction

import numpy as np
import pytest
import torch

from rnnlab.models.hopfield import UPDATE_ORDER_SEED
from tests.test_zoo import hopfield_memory


def exact_hebbian(patterns: np.ndarray) -> np.ndarray:
    """N W = sum_mu xi xi^T in integers: the fields' signs are those of W = C / N."""
    counts = patterns.T.astype(np.int64) @ patterns.astype(np.int64)
    np.fill_diagonal(counts, 0)
    return counts


def exact_storkey(patterns: np.ndarray) -> list[list[Fraction]]:
    n = patterns.shape[1]
    w = [[Fraction(0)] * n for _ in range(n)]
    for xi in patterns.tolist():
        field = [sum(w[i][k] * xi[k] for k in range(n)) for i in range(n)]
        local = [[field[i] - w[i][i] * xi[i] - w[i][j] * xi[j] for j in range(n)] for i in range(n)]
        w = [
            [w[i][j] + Fraction(xi[i] * xi[j] - xi[i] * local[j][i] - local[i][j] * xi[j], n) for j in range(n)]
            for i in range(n)
        ]
    for i in range(n):
        w[i][i] = Fraction(0)
    return w


def field(weight, i: int, state: list[int]):
    if isinstance(weight, np.ndarray):
        return int(weight[i] @ np.array(state))
    return sum(w * s for w, s in zip(weight[i], state))


def sign_keep(field, previous: int) -> int:
    return 1 if field > 0 else -1 if field < 0 else previous


def exact_recall(weight, cue: list[int], update: str, max_iterations: int = 20) -> list[int]:
    """The documented dynamics in exact arithmetic; the asynchronous order is the memory's own seeded one."""
    n = len(cue)
    state = [sign_keep(c, 1) for c in cue]
    if update == "sync":
        for _ in range(max_iterations):
            new = [sign_keep(field(weight, i, state), state[i]) for i in range(n)]
            if new == state:
                break
            state = new
        return state
    generator = torch.Generator().manual_seed(UPDATE_ORDER_SEED)
    for _ in range(max_iterations):
        changed = False
        for i in torch.randperm(n, generator=generator).tolist():
            new = sign_keep(field(weight, i, state), state[i])
            changed |= new != state[i]
            state[i] = new
        if not changed:
            break
    return state


def recall_pairs(rule: str, update: str, size: int, num_patterns: int, seed: int):
    rng = np.random.default_rng(seed)
    patterns = rng.choice([-1, 1], size=(num_patterns, size))
    flips = rng.random((num_patterns, size)) < 0.2
    cues = np.where(flips, -patterns, patterns)
    memory = hopfield_memory(rule, update, size)
    memory.store(torch.tensor(patterns, dtype=torch.float32))
    got = memory.recall(torch.tensor(cues, dtype=torch.float32)).to(torch.int64).tolist()
    weight = exact_hebbian(patterns) if rule == "hebbian" else exact_storkey(patterns)
    return got, [exact_recall(weight, cue, update) for cue in cues.tolist()]


@pytest.mark.parametrize("update", ["sync", "async"])
def test_hebbian_recall_matches_exact_arithmetic_at_zero_fields(update):
    """N = 100, P = 20 (even N and P: zero fields are common); every seed's recall equals the exact one."""
    differing = [s for s in range(40) if (pair := recall_pairs("hebbian", update, 100, 20, s))[0] != pair[1]]
    assert differing == []


@pytest.mark.parametrize("update", ["sync", "async"])
@pytest.mark.parametrize("size", [16, 12])
def test_storkey_recall_matches_exact_arithmetic(update, size):
    """Storkey's weights are rationals with denominator N^P, kept as integers N^P W while they fit 53 bits."""
    differing = [s for s in range(30) if (pair := recall_pairs("storkey", update, size, 4, s))[0] != pair[1]]
    assert differing == []
