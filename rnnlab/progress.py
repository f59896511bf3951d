"""Terminal progress for one run: a bar over epochs showing the monitored metric and the train loss."""

from __future__ import annotations

import logging
import sys
from typing import Any

from tqdm import tqdm

logger = logging.getLogger(__name__)


class EpochProgress:
    def __init__(self, epochs: int, metric: str, enabled: bool | None = None):
        self.metric = metric
        enabled = sys.stderr.isatty() and logger.isEnabledFor(logging.INFO) if enabled is None else enabled
        self.bar = tqdm(total=epochs, unit="epoch", disable=not enabled, dynamic_ncols=True)
        self.enabled = enabled

    def update(self, metrics: dict[str, Any]) -> None:
        shown = {k: metrics[k] for k in ("train/loss", self.metric) if k in metrics}
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()})
        self.bar.n = int(metrics.get("epoch", self.bar.n + 1))
        self.bar.refresh()
        if not self.enabled:  # no terminal (CI, logs): one plain line per epoch instead of a bar
            parts = "  ".join(f"{k}={v:.4g}" for k, v in shown.items())
            logger.info(f"epoch {metrics.get('epoch')}/{self.bar.total}  {parts}")

    def __enter__(self) -> EpochProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
