"""minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, 2024, "Were RNNs All We Needed?").

    f_t = sigmoid(W_f x_t),  i_t = sigmoid(W_i x_t),  h~_t = g(W_h x_t),
    h_t = f'_t * h_{t-1} + i'_t * h~_t,   f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)

Like minGRU, the gates read only the input: a linear recurrence, trained through minGRU's parallel scan in log
space (`model.minlstm.scan=log`) or run step by step (`sequential`). The normalised gates keep h's scale
independent of time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from rnnlab.models.encoder import RecurrentConfig
from rnnlab.models.mingru import MinRNN, MinRNNScanConfig, log_g


@dataclass
class MinLSTMConfig(RecurrentConfig):
    family: str = "minlstm"
    minlstm: MinRNNScanConfig = field(default_factory=MinRNNScanConfig)


class MinLSTM(MinRNN):
    gates = 3

    def __init__(self, cfg: MinLSTMConfig, input_size: int):
        super().__init__(cfg, input_size, cfg.minlstm.scan)

    @staticmethod
    def coefficients(pre_BTG: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """With d = softplus(-k_f) - softplus(-k_i) = log(i / f): log f' = -softplus(d), log i' = -softplus(-d)."""
        forget_BTH, input_BTH, candidate_BTH = pre_BTG.chunk(3, dim=-1)
        d_BTH = F.softplus(-forget_BTH) - F.softplus(-input_BTH)
        return -F.softplus(d_BTH), -F.softplus(-d_BTH) + log_g(candidate_BTH)
