"""The prepared-data cache is keyed by the code that prepares the data: editing a preparer in rnnlab/tasks (or a
generator, an encoder) re-prepares, so a run never trains on data prepared by older code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rnnlab
from rnnlab.data import cache
from rnnlab.tasks import TASKS

PREPARE = """
import json, rnnlab
from rnnlab.config import DataConfig
from rnnlab.tasks import load_task_data
data = load_task_data(DataConfig(source="builtin", name="copy", task="copy", num_samples=32, seq_len=5), 0)
print(json.dumps({"package": rnnlab.__file__, "cache": data.meta["cache"], "key": data.fingerprint,
                  "labels": data.meta["labels"]}))
"""


def test_key_covers_every_module_that_prepares_data():
    names = {str(path.relative_to(cache.PACKAGE)) for path in cache.preparation_modules()}
    for module in ("tasks/base.py", "tasks/series.py", "tasks/memory.py", "tasks/copy.py", "data/builtin.py"):
        assert module in names
    assert {"data/encoders.py", "data/prepare.py", "data/sources.py", "data/sequences.py"} <= names
    for task in TASKS.values():  # each task's own module (and its preparer's) is in the key
        assert Path(sys.modules[type(task).__module__].__file__).resolve() in cache.preparation_modules(task)


def copy_package(root: Path) -> Path:
    shutil.copytree(Path(rnnlab.__file__).parent, root / "rnnlab", ignore=shutil.ignore_patterns("__pycache__"))
    return root / "rnnlab"


def test_editing_a_task_module_changes_the_key(tmp_path, monkeypatch):
    """In process: the key's code hash read from a copied tree, whose task modules are edited one at a time."""
    package = copy_package(tmp_path)
    monkeypatch.setattr(cache, "PACKAGE", package.resolve())
    keys = {cache.code_hash()}
    for module in ("tasks/base.py", "tasks/series.py", "tasks/memory.py", "tasks/copy.py", "data/builtin.py"):
        with (package / module).open("a") as f:
            f.write("\nEDITED = True\n")
        keys.add(cache.code_hash())
    assert len(keys) == 6


def prepare_with(package_root: Path, cache_dir: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(package_root), "RNNLAB_CACHE": str(cache_dir)}
    run = [sys.executable, "-c", PREPARE]  # from package_root: the working directory comes first on sys.path
    out = subprocess.run(run, cwd=package_root, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # two fresh interpreters importing torch and datasets
def test_editing_a_task_preparer_re_prepares(tmp_path):
    """A copy of the package, run in a subprocess: its copy preparer's blank label is edited between two runs."""
    root = tmp_path / "src"
    copy_package(root)
    before = prepare_with(root, tmp_path / "cache")
    assert before["package"].startswith(str(root)) and before["cache"] == "miss"
    assert before["labels"][0] == "<blank>"
    preparer = root / "rnnlab" / "tasks" / "copy.py"
    source = preparer.read_text()
    assert '"<blank>"' in source
    preparer.write_text(source.replace('"<blank>"', '"<pause>"'))
    after = prepare_with(root, tmp_path / "cache")
    assert after["cache"] == "miss" and after["key"] != before["key"]
    assert after["labels"][0] == "<pause>"  # prepared by the edited code, not read back from the old entry
    assert len(list((tmp_path / "cache").glob("copy-*.pt"))) == 2
