"""CheckpointWriter: fsyncs off the calling thread, old checkpoints deleted only after the new one is durable."""

import logging
import threading

import pytest
import torch

from rnnlab import checkpoint
from rnnlab.checkpoint import CheckpointWriter, is_valid, list_checkpoints, load_latest


def state(epoch):
    return {"epoch": epoch, "w": torch.ones(3) * epoch}


def test_after_close_the_newest_keep_checkpoints_remain_and_are_valid(tmp_path):
    writer = CheckpointWriter(tmp_path, keep=2)
    for epoch in range(1, 6):
        writer.save(epoch, state(epoch))
    writer.close()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch_0004", "epoch_0005"]
    assert all(is_valid(p) for p in list_checkpoints(tmp_path))
    assert load_latest(tmp_path)["epoch"] == 5


def test_old_checkpoints_are_deleted_only_after_the_new_one_is_durable(tmp_path, monkeypatch):
    """While the fsyncs of epoch 2 are held back, `save` has returned, epoch 2 is complete and epoch 1 remains."""
    held, release = threading.Event(), threading.Event()
    real_fsync = checkpoint._fsync

    def held_fsync(path):
        held.set()
        assert release.wait(timeout=30), "the test never released the fsyncs"
        real_fsync(path)

    monkeypatch.setattr(checkpoint, "_fsync", held_fsync)
    writer = CheckpointWriter(tmp_path, keep=1)
    release.set()
    writer.save(1, state(1))
    writer.wait()
    release.clear()
    held.clear()
    try:
        folder = writer.save(2, state(2))  # returns with its fsyncs still held: they run on the writer's thread
        assert held.wait(timeout=30)  # the writer's thread has reached the first fsync of epoch 2
        assert is_valid(folder)  # renamed into place, so a reader (Ray copying the folder) sees whole files
        assert (tmp_path / "epoch_0001").exists()
    finally:
        release.set()
        writer.close()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch_0002"]


@pytest.mark.parametrize("surfaces_on", ["save", "close"])
def test_an_error_in_the_background_work_surfaces_on_the_next_call(tmp_path, monkeypatch, surfaces_on):
    def failing_fsync(path):
        raise OSError(5, "Input/output error", str(path))

    monkeypatch.setattr(checkpoint, "_fsync", failing_fsync)
    writer = CheckpointWriter(tmp_path)
    writer.save(1, state(1))  # the error happens on the writer's thread, after this returns
    with pytest.raises(OSError, match="Input/output error"):
        writer.save(2, state(2)) if surfaces_on == "save" else writer.close()
    writer.close()  # raised once, not again


def test_a_checkpoint_truncated_after_its_save_is_skipped(tmp_path, caplog):
    writer = CheckpointWriter(tmp_path)
    writer.save(1, state(1))
    folder = writer.save(2, state(2))
    writer.close()
    (folder / checkpoint.STATE).write_bytes((folder / checkpoint.STATE).read_bytes()[:10])
    with caplog.at_level(logging.WARNING, logger="rnnlab.checkpoint"):
        assert load_latest(tmp_path)["epoch"] == 1
    assert "corrupted" in caplog.text


def test_a_training_error_is_not_masked_by_a_durability_error(tmp_path, monkeypatch, caplog):
    def failing_fsync(path):
        raise OSError(5, "Input/output error", str(path))

    monkeypatch.setattr(checkpoint, "_fsync", failing_fsync)
    raises, logs = pytest.raises(FloatingPointError, match="diverged"), caplog.at_level(logging.WARNING, "rnnlab")
    with logs, raises, CheckpointWriter(tmp_path) as writer:
        writer.save(1, state(1))
        raise FloatingPointError("diverged")
    assert "durable also failed" in caplog.text
