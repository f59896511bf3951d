"""The copy task in the literature's normalisation (`data.task=copy`): every step has a target, the memoryless
baseline scores 10 ln 8 / (T+20), and recall_loss is the recall-steps-only loss `tagging` reports on the same data."""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from rnnlab.config import DataConfig
from rnnlab.tasks import IGNORE_INDEX, TASKS, Metrics, load_task_data

T = 30


def copy_data(task: str):
    return load_task_data(DataConfig(source="builtin", name="copy", task=task, seq_len=T, num_samples=200), 0)


def test_every_step_has_a_target_the_blank_until_the_recall_then_the_symbols():
    copy, tagging = copy_data("copy"), copy_data("tagging")
    targets = copy.test.targets
    assert targets.shape[1] == T + 20 and (targets != IGNORE_INDEX).all()
    assert (targets[:, :-10] == 0).all() and (targets[:, -10:] >= 1).all()
    assert torch.equal(targets[:, -10:] - 1, tagging.test.targets[:, -10:])  # the same symbols, shifted past blank
    # the symbols to recall are the first 10 inputs (token id = symbol + 1 in the vocabulary)
    symbols = torch.tensor([int(copy.vocab[i]) for i in copy.test.inputs[:, :10].flatten()]).view(-1, 10)
    assert torch.equal(torch.tensor([copy.meta["labels"][c] for c in targets[:, -10:].flatten()]).view(-1, 10), symbols)
    assert copy.output_size == tagging.output_size + 1 == 9


def test_the_memoryless_baseline_scores_10_ln_8_over_t_plus_20_and_ln_8_on_the_recall_steps():
    data = copy_data("copy")
    targets, lengths = data.test.targets, data.test.lengths
    logits = torch.zeros(*targets.shape, 9)
    logits[:, : T + 10, 0] = 100.0  # certain of the blank before the recall
    logits[:, T + 10 :, 0] = -100.0  # uniform over the 8 symbols during it
    task = TASKS["copy"]
    metrics = Metrics(task, "test")
    metrics.update(logits, targets, lengths, task.loss(logits, targets, lengths))
    values = metrics.compute()
    assert math.isclose(values["test/loss"], 10 * math.log(8) / (T + 20), rel_tol=1e-5)
    assert math.isclose(values["test/recall_loss"], math.log(8), rel_tol=1e-5)
    assert values["test/acc"] >= (T + 10) / (T + 20)  # every blank right


def test_recall_loss_and_acc_are_taggings_loss_and_acc_on_the_same_predictions():
    copy, tagging = copy_data("copy"), copy_data("tagging")
    symbol_logits = torch.randn(*tagging.test.targets.shape, 8, generator=torch.Generator().manual_seed(0))
    blank_logit = torch.full((*symbol_logits.shape[:2], 1), -1e4)  # never the blank: the 8-way distribution
    logits = torch.cat([blank_logit, symbol_logits], dim=-1)
    results = {}
    for name, data, outputs in (("copy", copy, logits), ("tagging", tagging, symbol_logits)):
        task, split = TASKS[name], data.test
        metrics = Metrics(task, "test")
        metrics.update(outputs, split.targets, split.lengths, task.loss(outputs, split.targets, split.lengths))
        results[name] = metrics.compute()
    assert math.isclose(results["copy"]["test/recall_loss"], results["tagging"]["test/loss"], rel_tol=1e-6)
    assert results["copy"]["test/recall_acc"] == results["tagging"]["test/acc"]


def test_the_ignore_index_is_written_once_and_marks_the_untagged_steps():
    package = Path(__file__).resolve().parents[1] / "rnnlab"
    literal = re.compile(r"(?<![\w.])-100(?![\w.])")
    spelled = [str(p.relative_to(package)) for p in package.rglob("*.py") if literal.search(p.read_text())]
    assert spelled == ["data/taskdata.py"], spelled
    tags = copy_data("tagging").train.targets
    assert (tags[:, :-10] == IGNORE_INDEX).all() and (tags[:, -10:] >= 0).all()
