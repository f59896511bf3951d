"""`train.device=cuda` where trials run without a GPU: `rnnlab preflight` fails naming train.device (it said ok and
every trial then failed), and `rnnlab tune` on this machine's Ray refuses before the search folder exists."""

import subprocess
import sys
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.config import Config, SearchConfig, TrainConfig
from rnnlab.preflight import Node, check_device

ROOT = Path(__file__).resolve().parent.parent
AWS = str(ROOT / "cluster" / "aws.yaml")  # node types: head (0 CPU), cpu_worker (16 CPU), gpu_worker (4 CPU, 1 GPU)
CPU_NODE, GPU_NODE, TWO_GPUS = Node("cpu", 16, 0), Node("gpu", 4, 1), Node("gpu2", 8, 2)


def no_cuda_here() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")


def config(device: str, gpus: float = 0.0) -> Config:
    return Config(train=TrainConfig(device=device), search=SearchConfig(gpus_per_trial=gpus))


@pytest.mark.parametrize(
    "device, gpus, nodes, words",
    [
        ("cuda", 0, [CPU_NODE], ["no node has one"]),
        ("cuda", 0, [CPU_NODE, GPU_NODE], ["search.gpus_per_trial=0", "cpu: 16 CPU 0 GPU"]),  # a CPU node takes it
        ("cuda:1", 0, [GPU_NODE, TWO_GPUS], ["without 2 GPUs", "gpu: 4 CPU 1 GPU"]),
        ("cuda:1", 1, [TWO_GPUS], ["sees only the 1 GPU", "numbered from 0"]),  # Ray numbers a trial's GPUs from 0
    ],
)
def test_a_cuda_device_no_trial_would_see_is_a_failure(device, gpus, nodes, words):
    [failure] = check_device(config(device, gpus), nodes)
    assert failure.startswith("train.device: ") and all(w in failure for w in words), failure


@pytest.mark.parametrize(
    "device, gpus, nodes",
    [
        ("cuda", 0, [GPU_NODE]),  # every node has a GPU: the trials share it unreserved
        ("cuda", 1, [CPU_NODE, GPU_NODE]),  # Ray places each trial on a GPU node
        ("cuda:1", 2, [CPU_NODE, TWO_GPUS]),
        ("cuda:1", 1.5, [TWO_GPUS]),  # a fraction over 1 gives a trial 2 GPUs
        ("cpu", 0, [CPU_NODE]),
        ("auto", 0, [CPU_NODE]),
    ],
)
def test_a_cuda_device_every_trial_sees_passes(device, gpus, nodes):
    assert check_device(config(device, gpus), nodes) == []


def test_preflight_of_cuda_on_a_machine_without_a_gpu(tmp_path, capsys):
    no_cuda_here()
    code = main(["preflight", "search_digits", "--device", "cuda", "--storage", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2 and "preflight: ok" not in captured.out, captured.out
    assert "train.device: cuda asks for a GPU, but no node has one" in captured.err and "Traceback" not in captured.err
    assert main(["preflight", "search_digits", "--device", "cpu", "--storage", str(tmp_path)]) == 0


def test_preflight_of_cuda_against_a_cluster_with_cpu_nodes(capsys):
    assert main(["preflight", "search_digits", "--cluster-config", AWS, "--device", "cuda"]) == 2
    assert "node type cpu_worker: 16 CPU 0 GPU" in capsys.readouterr().err
    sets = ["--set", "search.gpus_per_trial=1", "search.cpus_per_trial=1"]  # trials go to gpu_worker only
    assert main(["preflight", "search_digits", "--cluster-config", AWS, "--device", "cuda", *sets]) == 0


def test_tune_with_cuda_on_a_machine_without_a_gpu_is_refused_before_the_folder(tmp_path):
    """Before: the search ran and every trial failed ("this machine has no CUDA device")."""
    no_cuda_here()
    argv = ["tune", "search_digits", "--device", "cuda", "--storage", str(tmp_path), "--name", "s"]
    done = subprocess.run([sys.executable, "-m", "rnnlab", *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "train.device: cuda asks for a GPU, but no node has one" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "s").exists()
