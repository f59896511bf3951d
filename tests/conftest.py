"""Shared test setup: offline everything, W&B disabled unless a test asks, a private datasets cache."""

import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Every test gets a datasets cache of its own, so tests never see each other's prepared data."""
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path_factory.mktemp("rnnlab-cache")))
