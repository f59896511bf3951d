"""The README's commands as a new user runs them: a fresh clone in a new virtualenv without the system's packages,
the base install (no extras), the main job and `rnnlab report`; and an install into a venv that already holds
another torch, which pip must keep. A dependency missing from pyproject.toml fails here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLOTS = ("optimization_history.png", "param_importances.png", "parallel_coordinate.png")
OTHER_TORCH = "2.14.1"  # not the tested 2.13.0 (constraints.txt): a CUDA build, on this machine's local index


def readme_command(number: int) -> str:
    """The line under `# N. ...` in the README's set-up block."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"# {number}. "))
    return lines[start + 1].strip()


def test_ci_runs_exactly_readme_command_2():
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == readme_command(2)


def fresh_clone(dest: Path) -> Path:
    """The tracked files of this checkout (as `git clone` would give them), or the tree without caches."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, text=True)
    if listed.returncode != 0:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(".git", "*.egg-info", "__pycache__", "searches"))
        return dest
    for name in filter(None, listed.stdout.split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def make_venv(path: Path, system_site_packages: bool = False) -> dict[str, str]:
    """A new virtualenv and the environment of a shell that activated it (no PYTHONPATH, no W&B settings)."""
    flags = ["--system-site-packages"] if system_site_packages else []
    subprocess.run([sys.executable, "-m", "venv", *flags, str(path)], check=True, timeout=300)
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "TORCH_EXTENSIONS_DIR")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("WANDB_")}
    env["PATH"] = f"{path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(path)
    return env


def shell(command: str, cwd: Path, env: dict[str, str], log: Path, timeout: float) -> int:
    """Run `command` as a user's shell would; its output goes to `log` (printed on failure)."""
    with open(log, "w") as out:
        done = subprocess.run(
            command, shell=True, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        )
    if done.returncode != 0:
        print(log.read_text()[-6000:])
    return done.returncode


def venv_torch(env: dict[str, str]) -> str:
    code = "import torch; print(torch.__version__)"
    return subprocess.run(["python", "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def venv_path(tmp_path):
    """Where the test's virtualenv goes; removed afterwards (GBs: pytest keeps the last runs' tmp dirs)."""
    yield tmp_path / "venv"
    shutil.rmtree(tmp_path / "venv", ignore_errors=True)


@pytest.mark.slow
def test_readme_command_1_on_a_fresh_venv_runs_the_main_job_and_the_report(tmp_path, venv_path):
    clone = fresh_clone(tmp_path / "clone")
    env = make_venv(venv_path)
    install, job = readme_command(1).split(" && ")
    assert install.startswith("pip install -e .") and "[" not in install  # the base install: no extras
    assert job == "rnnlab tune experiments/search_digits.py"

    assert shell(install, clone, env, tmp_path / "install.log", timeout=1800) == 0
    assert venv_torch(env).startswith("2.13.0")  # constraints.txt's torch, not a 5.5 GB CUDA build
    storage = tmp_path / "searches"
    shrunk = f"{job} --storage {storage} --name fresh --samples 2 --set train.epochs=2 train.max_batches=5"
    assert shell(shrunk, clone, env, tmp_path / "job.log", timeout=1200) == 0

    folder = tmp_path / "searches" / "fresh"
    for plot in PLOTS:
        assert (folder / plot).stat().st_size > 1000, plot
    results = [json.loads(p.read_text()) for p in folder.glob("trials/*/result.json")]
    assert len(results) == 2
    overrides = (folder / "best_overrides.txt").read_text().split()
    assert overrides[0] == "--set" and any(o.startswith("model.family=") for o in overrides)
    search_json = json.loads((folder / "search.json").read_text())
    assert search_json["name"] == "fresh"

    assert shell(f"rnnlab report {folder}", clone, env, tmp_path / "report.log", timeout=600) == 0
    report = (folder / "report" / "report.html").read_text()
    assert "<html" in report.lower()
    best = next(o for o in overrides if o.startswith("model.family=")).split("=", 1)[1]
    assert best in report
    for trial in folder.glob("trials/*"):
        assert trial.name in report  # every trial is in the report's tables


@pytest.mark.slow
def test_install_into_a_venv_with_another_torch_keeps_it(tmp_path, venv_path):
    """A venv holding torch 2.14.1 (a CUDA build; the other packages come from the system's site-packages, so only
    torch is new): `pip install -e .`, as README "GPU" says, keeps that torch and rnnlab imports with it."""
    clone = fresh_clone(tmp_path / "clone")
    env = make_venv(venv_path, system_site_packages=True)
    setup = f"pip install --no-compile torch=={OTHER_TORCH}"  # 5.5 GB: no .pyc compiling saves minutes
    assert shell(setup, clone, env, tmp_path / "torch.log", timeout=1800) == 0
    other = venv_torch(env)  # with its build tag: 2.14.1+cu130
    assert other.split("+")[0] == OTHER_TORCH

    assert shell("pip install -e .", clone, env, tmp_path / "install.log", timeout=900) == 0
    log = (tmp_path / "install.log").read_text()
    assert venv_torch(env) == other, log[-3000:]
    assert "Uninstalling torch" not in log
    assert f"Requirement already satisfied: torch>=2.8 in {venv_path}" in log
    code = "import rnnlab.trial, torch, rnnlab; print(torch.__version__, rnnlab.__file__)"
    done = subprocess.run(["python", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    version, location = done.stdout.split()
    assert version == other and Path(location).is_relative_to(clone)


def test_the_kuberay_job_installs_every_default_dependency_at_its_tested_version():
    """The RayJob runs the code from an archive, not pip-installed: its runtime_env must list what pyproject.toml
    declares (the image brings Ray), at constraints.txt's versions."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    import yaml

    def name(requirement: str) -> str:
        return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")

    declared = {name(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    tested = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line)
    tested = {name(k): v for k, v in tested.items()}
    manifest = yaml.safe_load((ROOT / "cluster" / "kuberay-rayjob.yaml").read_text())
    pip = yaml.safe_load(manifest["spec"]["runtimeEnvYAML"])["pip"]
    pinned = {name(r): r.split("==")[1] for r in pip}
    assert set(pinned) == declared - {"ray"}
    assert all(pinned[n] == tested[n] for n in pinned)
    assert declared <= set(tested)  # constraints.txt pins every default dependency
