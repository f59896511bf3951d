"""A search whose disk fills up, from outside: a small tmpfs of the test's own (a mount namespace) as --storage.

The first trial to meet the full disk stops the search: exit 1, one message naming the disk and the resume
command, no traceback, no trial of the study failed for it (it used to retry each trial on the same full disk,
print Ray's tracebacks, and end the trials FAIL "No space left on device", which the resume kept). Once there is
space, the resume finishes the budget and the record agrees with itself: every trial once, every value its
result.json's.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT = ROOT / "experiments" / "search_esn_mackey_glass.py"
SAMPLES = 40

# in the namespace: the search on an 8 MiB disk, the disk grown to 400 MiB, the resume, the study read back
SCRIPT = """
set -u
mount -t tmpfs -o size=8m tmpfs "$1"
"$2" -m rnnlab tune "$3" --samples "$4" --storage "$1" --name full > "$5/first.out" 2> "$5/first.err"
echo $? > "$5/first.rc"
mount -o remount,size=400m "$1"
"$2" -m rnnlab tune "$1/full" --resume > "$5/resume.out" 2> "$5/resume.err"
echo $? > "$5/resume.rc"
"$2" -c "$6" "$1/full" > "$5/study.json"
"""

READ_STUDY = """
import json, sys
from rnnlab.search_folder import load_study, read_json
folder = sys.argv[1]
trials = []
for t in load_study(folder).trials:
    rid = t.user_attrs.get("ray_trial_id")
    result = read_json(f"{folder}/trials/{rid}/result.json") if rid else {}
    trials.append({"state": t.state.name, "value": t.value, "reason": t.user_attrs.get("reason", ""), "id": rid,
                   "result": {k: result.get(k) for k in ("status", "val/rmse")}})
print(json.dumps(trials))
"""


@pytest.mark.slow
def test_a_search_on_a_disk_that_fills_up_stops_and_resumes(tmp_path):
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root to mount a small tmpfs")
    disk, logs = tmp_path / "disk", tmp_path / "logs"
    disk.mkdir()
    logs.mkdir()
    args = [str(disk), sys.executable, str(EXPERIMENT), str(SAMPLES), str(logs), READ_STUDY]
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", SCRIPT, "sh", *args],
        env={**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    first = (logs / "first.err").read_text()
    assert (logs / "first.rc").read_text().strip() == "1", first[-3000:]
    assert "No space left on device" in first and "--resume" in first, first[-3000:]
    assert "Traceback" not in first, first[-3000:]
    resume = (logs / "resume.err").read_text()
    assert (logs / "resume.rc").read_text().strip() == "0", resume[-3000:]
    assert "Traceback" not in resume, resume[-3000:]

    trials = json.loads((logs / "study.json").read_text())
    assert not [t for t in trials if "space" in t["reason"] or "Errno" in t["reason"]], trials
    ids = [t["id"] for t in trials]
    assert len(ids) == len(set(ids)), ids  # each Ray trial once in the study
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert len(complete) == SAMPLES, trials  # the budget is full: orphans are replaced, not counted
    assert {t["state"] for t in trials} <= {"COMPLETE", "FAIL"}, trials  # nothing left running
    for t in complete:  # the study's value is the trial's own record
        assert t["result"] == {"status": "completed", "val/rmse": t["value"]}, t
    for t in trials:
        if t["state"] == "FAIL":  # only trials the stop cut short, replaced by others
            assert t["reason"].startswith("orphaned"), t


# in the namespace: a copy of a search on a 4 MiB disk, its report, more trials, the disk filled, the report again
REPORT_SCRIPT = """
set -u
mount -t tmpfs -o size=4m tmpfs "$1"
cp -a "$2" "$1/s"
"$3" -m rnnlab report "$1/s" > /dev/null 2> "$4/first.err"
echo $? > "$4/first.rc"
cp -a "$1/s/report" "$4/before"
cp -a "$5/." "$1/s"
dd if=/dev/zero of="$1/fill" bs=64k 2> /dev/null
"$3" -m rnnlab report "$1/s" > /dev/null 2> "$4/second.err"
echo $? > "$4/second.rc"
cp -a "$1/s/report" "$4/after"
"""


def test_a_report_on_a_full_disk_keeps_the_last_one_whole(tmp_path):
    """`rnnlab report` again, with more trials, once the disk is full: exit 1 naming the disk, and the last report's
    files, pages and figures alike, are as they were (each was rewritten in place: a full disk left it cut short)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root to mount a small tmpfs")
    sys.path.insert(0, str(ROOT / "tests"))
    from test_report import make_search

    search, grown, disk, logs = (tmp_path / name for name in ("search", "grown", "disk", "logs"))
    make_search(search, {"lstm": [0.8]})
    make_search(grown, {"lstm": [0.8, 0.7, 0.75], "gru": [0.6, 0.65], "elman": [0.5]})
    disk.mkdir()
    logs.mkdir()
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", REPORT_SCRIPT, "sh"]
        + [str(disk), str(search), sys.executable, str(logs), str(grown)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (logs / "first.rc").read_text().strip() == "0", (logs / "first.err").read_text()[-3000:]
    second = (logs / "second.err").read_text()
    assert (logs / "second.rc").read_text().strip() == "1" and "No space left on device" in second, second[-3000:]
    assert "Traceback" not in second, second[-3000:]
    before = {p.name: p.read_bytes() for p in (logs / "before").iterdir()}
    assert {"report.html", "report.md", "families.json"} <= before.keys() and any(n.endswith(".png") for n in before)
    after = {p.name: p.read_bytes() for p in (logs / "after").iterdir()}
    assert after == before, sorted(n for n in before if after.get(n) != before[n])
