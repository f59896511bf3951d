"""A search's default name, NAME-TIMESTAMP: searches of one experiment started in the same second each get one of
their own (NAME-TIMESTAMP-2, -3, ...), as `rnnlab run` does for run folders, and none is refused. A name given with
--name is never changed, and a copied or moved search folder is resumed where it is. One real search, on a local
Ray."""

import shutil
import time
from pathlib import Path

import pytest

from rnnlab.cli import main

ROOT = Path(__file__).resolve().parent.parent
SEARCH_ESN = str(ROOT / "experiments" / "search_esn_mackey_glass.py")  # trials of a closed-form fit
WINDOW_S = 90  # seconds ahead whose default names are all taken before the search starts


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("via", ["cli", "api"])
def test_a_default_name_taken_in_the_same_second_moves_to_the_next_free_one(via, tmp_path, capsys):
    """Before: a second `rnnlab tune EXP` in the same second got the same NAME-TIMESTAMP and was refused (exit 2,
    'already holds a search' or 'in use'). Now: for every second of the window, NAME-TIMESTAMP holds a search and
    NAME-TIMESTAMP-2 is held by a live process, so the search lands in NAME-TIMESTAMP-3, named so in its
    search.json, and the others are as they were. rnnlab.search's summary reads the folder it took."""
    import ray

    from rnnlab.api import load
    from rnnlab.folder_lock import FolderLock
    from rnnlab.search_folder import SEARCH_FILE, SearchSpec
    from rnnlab.tune import connect

    name = load(SEARCH_ESN, {}).config.name
    start = time.time()
    stamps = [time.strftime("%Y%m%d-%H%M%S", time.localtime(start + s)) for s in range(-1, WINDOW_S)]
    locks = []
    for stamp in stamps:
        taken = tmp_path / f"{name}-{stamp}"
        SearchSpec(experiment=SEARCH_ESN, name=taken.name, storage=str(tmp_path), folder=str(taken)).save()
        locks.append(FolderLock(tmp_path / f"{name}-{stamp}-2", "--name"))
        locks[-1].acquire()  # another driver's, as flock sees it
    before, existing = snapshot(tmp_path), {p.name for p in tmp_path.iterdir()}
    try:
        assert main(["tune", SEARCH_ESN, "--name", f"{name}-{stamps[1]}", "--storage", str(tmp_path)]) == 2
        assert "already holds a search" in capsys.readouterr().err  # a name given is refused, not changed
        connect(None)
        try:
            if via == "cli":
                code = main(["tune", SEARCH_ESN, "--samples", "1", "--storage", str(tmp_path)])
            else:
                import rnnlab

                summary = rnnlab.search(SEARCH_ESN, overrides={"search.samples": 1}, storage=tmp_path)
                code = 0
        finally:
            ray.shutdown()
    finally:
        for lock in locks:
            lock.release()
    err = capsys.readouterr().err
    assert code == 0, err[-3000:]
    assert time.time() - start < WINDOW_S, "the window was too short for this machine"
    new = sorted({p.name for p in tmp_path.iterdir()} - existing)
    assert len(new) == 1 and new[0].endswith("-3") and new[0][: -len("-3")] in [f"{name}-{s}" for s in stamps], new
    spec = SearchSpec.load(tmp_path / new[0])
    if via == "api":
        assert summary.folder == (tmp_path / new[0]).resolve() and summary.counts["COMPLETE"] == 1, summary
    assert spec.name == new[0] and Path(spec.folder) == (tmp_path / new[0]).resolve()
    assert (tmp_path / new[0] / "trials").is_dir() and (tmp_path / new[0] / "optuna.journal").is_file()
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith(new[0] + "/") and SEARCH_FILE in k} == {
        k: v for k, v in before.items() if SEARCH_FILE in k
    }
    for stamp in stamps:  # the held folders: still only their lock, never removed by the search that passed them
        assert [p.name for p in (tmp_path / f"{name}-{stamp}-2").iterdir()] == [".rnnlab.lock"]


def test_a_default_name_refused_for_bad_input_leaves_no_folder(tmp_path, capsys):
    """Bad input with a default name: exit 2 naming the field, and no folder (empty or not) under --storage."""
    assert main(["tune", SEARCH_ESN, "--storage", str(tmp_path), "--set", "search.sampler=nope"]) == 2
    err = capsys.readouterr().err
    assert "search.sampler" in err and "Traceback" not in err, err[-2000:]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("how", ["copy", "move"])
def test_a_copied_or_moved_search_resumes_in_its_own_folder(how, tmp_path, monkeypatch):
    """Before 89ac3b9: `rnnlab tune COPY --resume` extended the ORIGINAL (run_search rebuilt the folder from
    search.json's name, which a copy shares), and a moved search was refused (exit 2: its old folder 'holds no
    search.json'). rnnlab's own `search` is replaced by one that records the spec it is given: no Ray, no trial."""
    from rnnlab.api import plan_search
    from rnnlab.search_folder import SEARCH_FILE, SearchSpec

    _, spec = plan_search(SEARCH_ESN, {}, "original", tmp_path)
    spec.save()
    original, where = tmp_path / "original", tmp_path / how
    (shutil.copytree if how == "copy" else shutil.move)(original, where)
    given = []
    monkeypatch.setattr("rnnlab.tune.driver.search", lambda exp, spec, resume, address: given.append(spec) or 0)
    assert main(["tune", str(where), "--resume"]) == 0
    assert [(Path(s.folder), s.name) for s in given] == [(where.resolve(), "original")]  # the name: search.json's
    # its own search-level W&B run: with the original's id, a sync of one would overwrite the other's
    assert given[0].search_id != spec.search_id and len(given[0].search_id) == 8
    if how == "copy":
        assert SearchSpec.load(original).search_id == spec.search_id  # the original, loaded where it is, keeps it
    if how == "copy":
        assert sorted(p.name for p in original.iterdir()) == [SEARCH_FILE]  # not even the lock: never taken
    else:
        assert not original.exists()


def offline_run(folder: Path, run_id: str) -> Path:
    """A real offline W&B run under `folder/wandb/`, as a search's end writes its trials Table there."""
    import wandb

    from rnnlab.tracking.wandb_run import finish_run, wandb_settings

    run = wandb.init(project="p", dir=str(folder), id=run_id, settings=wandb_settings("offline"))
    run.log({"x": 1})
    finish_run(run)
    [run_dir] = (folder / "wandb").glob(f"offline-run-*-{run_id}")
    return run_dir


def test_a_copied_search_does_not_upload_its_original_search_level_run(tmp_path, monkeypatch, capsys):
    """Before: `rnnlab sync COPY` uploaded the search-level run the copy holds under its ORIGINAL's run id, so the
    original's trials Table in W&B was overwritten with the copy's, as it was when the folder was copied. Now that
    run is not uploaded from the copy (named, with why), before and after the copy is resumed under its own id; the
    original's own folder still uploads it (tried here: there is no network)."""
    from rnnlab.api import plan_search
    from rnnlab.search_folder import SearchSpec
    from rnnlab.tracking.search import search_run_id

    _, spec = plan_search(SEARCH_ESN, {}, "original", tmp_path)
    spec.save()
    original, copy = tmp_path / "original", tmp_path / "copy"
    original_run = offline_run(original, search_run_id(spec))
    shutil.copytree(original, copy)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # the discard port: an upload is refused at once

    def sync(folder: Path) -> tuple[int, dict[str, str]]:
        code = main(["sync", str(folder), "--timeout", "5"])
        lines = capsys.readouterr().out.splitlines()
        return code, {line.split("  ")[1]: line for line in lines if line.startswith(("synced", "skipped", "FAILED"))}

    copied_run = copy / original_run.relative_to(original)
    code, lines = sync(copy)
    assert code == 0 and lines[str(copied_run)].startswith("skipped  "), lines
    assert "copied or moved from" in lines[str(copied_run)] and search_run_id(spec) in lines[str(copied_run)]
    SearchSpec.load(copy).save()  # resumed: the copy's search.json holds its own search id
    own_run = offline_run(copy, search_run_id(SearchSpec.load(copy)))
    code, lines = sync(copy)
    assert code == 1 and lines[str(copied_run)].startswith("skipped  ") and lines[str(own_run)].startswith("FAILED")
    code, lines = sync(original)
    assert code == 1 and lines[str(original_run)].startswith("FAILED  "), "the original's is its own to upload"
    assert not any(any(d.glob("*.wandb.synced")) for d in (original_run, copied_run, own_run))
