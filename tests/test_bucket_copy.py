"""A search in a bucket copied or moved to another prefix is the search at the URI it is given: resumed, reported
or replayed there, it writes there, never to the original its search.json's name points to. Against the real S3
server of test_storage.py (tests/s3server.py)."""

from __future__ import annotations

import json

import pytest
from s3server import seaweedfs
from test_storage import SHRUNK, rnnlab, search_env

from rnnlab.cli import main
from rnnlab.config import ConfigError
from rnnlab.experiment import REPO_EXPERIMENTS_DIR

SEARCH_ESN = str(REPO_EXPERIMENTS_DIR / "search_esn_mackey_glass.py")


@pytest.fixture(scope="module")
def s3():
    with seaweedfs() as server:
        yield server


@pytest.fixture
def bucket_env(s3, monkeypatch, tmp_path):
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return s3


def objects(s3, prefix: str) -> dict[str, bytes]:
    fs = s3.filesystem()
    found = {}
    for path in s3.files(prefix):
        with fs.open_input_stream(f"{s3.bucket}/{prefix}/{path}") as f:
            found[path] = f.read()
    return found


def copy_prefix(s3, source: str, target: str, move: bool = False) -> None:
    """What a user does with `aws s3 cp --recursive` (or `mv`): server-side, no rnnlab involved."""
    import pyarrow.fs

    fs = s3.filesystem()
    pyarrow.fs.copy_files(f"{s3.bucket}/{source}", f"{s3.bucket}/{target}", fs, fs)
    if move:
        fs.delete_dir(f"{s3.bucket}/{source}")


@pytest.mark.parametrize("how", ["uri", "storage-and-name", "moved"])
def test_a_copied_bucket_search_resumes_at_its_own_uri(bucket_env, tmp_path, monkeypatch, how):
    """Before: `rnnlab tune s3://b/runs/copy --resume` pushed search.json, the journal, the trials and Ray's state
    to s3://b/runs/<name in search.json>, the ORIGINAL. rnnlab's own `search` is replaced by one that records the
    spec it is given and pushes what the driver pushes (no Ray, no trial)."""
    from rnnlab.api import plan_search
    from rnnlab.storage import push_search, search_uri

    s3 = bucket_env
    prefix = f"fast-{how}"
    _, spec = plan_search(SEARCH_ESN, {}, "a", s3.uri(prefix))
    spec.folder = str(tmp_path / "old-head")
    (tmp_path / "old-head").mkdir()
    (tmp_path / "old-head" / "optuna.journal").write_bytes(b"")
    spec.save()
    push_search(spec)
    copy_prefix(s3, f"{prefix}/a", f"{prefix}/copy", move=how == "moved")
    before = objects(s3, f"{prefix}/a")
    given = []

    def recorder(exp, given_spec, resume, address):
        given.append((search_uri(given_spec), given_spec.name))
        assert given_spec.search_id != spec.search_id  # a copy's own search-level W&B run
        (tmp_path / "searches" / "copy" / "optuna.journal").write_bytes(b"extended")
        push_search(given_spec)
        return 0

    monkeypatch.setattr("rnnlab.tune.driver.search", recorder)
    target = (
        [s3.uri(f"{prefix}/copy")]
        if how != "storage-and-name"
        else [SEARCH_ESN, "--storage", s3.uri(prefix), "--name", "copy"]
    )
    assert main(["tune", *target, "--resume", "--samples", "2"]) == 0
    assert given == [(s3.uri(f"{prefix}/copy"), "a")]  # the name (W&B group, run ids): search.json's
    assert objects(s3, f"{prefix}/a") == before  # byte for byte; nothing at all for a moved search
    assert objects(s3, f"{prefix}/copy")["optuna.journal"] == b"extended"


def test_two_bucket_searches_of_one_last_name_never_share_the_local_cache(bucket_env, tmp_path):
    """s3://b/x/s and s3://b/y/s both download to ./searches/s: the second is refused there, not mixed in, and so
    is a bucket search s where a local search s (default --storage searches) is."""
    from rnnlab.api import plan_search
    from rnnlab.search_folder import SearchSpec
    from rnnlab.storage import localize, push_search

    s3 = bucket_env
    searches = {}
    for prefix in ("cache-x", "cache-y"):
        _, spec = plan_search(SEARCH_ESN, {}, "s", s3.uri(prefix))
        searches[prefix] = spec.search_id
        spec.folder = str(tmp_path / prefix)
        spec.save()
        push_search(spec)
    assert localize(s3.uri("cache-x/s")) == (tmp_path / "searches" / "s").resolve()
    assert SearchSpec.load(tmp_path / "searches" / "s").search_id == searches["cache-x"]  # the same search here
    assert localize(s3.uri("cache-x/s/")) == (tmp_path / "searches" / "s").resolve()  # the same search again
    with pytest.raises(ConfigError, match="already holds the search of .*cache-x/s"):
        localize(s3.uri("cache-y/s"))
    _, spec = plan_search(SEARCH_ESN, {}, "local", "searches")
    spec.save()
    with pytest.raises(ConfigError, match="already holds a local search"):
        localize(s3.uri("cache-x/local"))
    assert s3.files("cache-x") == ["s/search.json"] and sorted(
        p.name for p in (tmp_path / "searches" / "local").iterdir()
    ) == ["search.json"]


@pytest.mark.slow
def test_a_copied_bucket_search_extended_leaves_the_original_byte_identical(bucket_env, tmp_path):
    """A real search of one trial, copied server-side and extended to two from another head: the original's
    objects are unchanged byte for byte, the copy holds both trials (about 70 s: two launches of Ray)."""
    s3 = bucket_env
    env = search_env(s3, tmp_path)
    for head in ("head", "new-head"):
        (tmp_path / head).mkdir()
    rnnlab(
        ["tune", "search_digits", "--samples", "1", *SHRUNK, "--storage", s3.uri("slow"), "--name", "a"],
        tmp_path / "head",
        env,
    )
    copy_prefix(s3, "slow/a", "slow/copy")
    before = objects(s3, "slow/a")
    rnnlab(["tune", s3.uri("slow/copy"), "--resume", "--samples", "2"], tmp_path / "new-head", env)
    assert objects(s3, "slow/a") == before
    copied = s3.files("slow/copy")
    trials = {f.split("/")[1] for f in copied if f.startswith("trials/") and f.endswith("/result.json")}
    first = {f.split("/")[1] for f in before if f.startswith("trials/") and f.endswith("/result.json")}
    assert len(trials) == 2 and len(first) == 1 and first < trials, copied
    assert "/slow/copy?" in json.loads(objects(s3, "slow/copy")["search.json"])["uri"]  # where it is now


def test_a_new_bucket_search_whose_local_folder_holds_another_says_which(bucket_env, tmp_path, capsys):
    """./searches/<name> holding a local search (or another bucket's) made a new bucket search say 'pass --resume
    to continue it', which would not continue it; now it names the search the folder holds and the way on."""
    from rnnlab.api import plan_search

    s3 = bucket_env
    _, local = plan_search(SEARCH_ESN, {}, "s", "searches")
    local.save()
    assert main(["tune", SEARCH_ESN, "--storage", s3.uri("held"), "--name", "s"]) == 2
    err = capsys.readouterr().err
    assert "holds another search (a local one)" in err and "--resume" not in err, err
    _, ours = plan_search(SEARCH_ESN, {}, "b", s3.uri("held"))
    ours.uri = s3.uri("held/b")
    ours.save()
    assert main(["tune", SEARCH_ESN, "--storage", s3.uri("held"), "--name", "b"]) == 2
    assert "already holds s3://" in (err := capsys.readouterr().err) and "tune URI --resume" in err, err
