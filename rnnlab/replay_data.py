"""Whether `rnnlab replay` ran on a trial's data and environment, and its verdict.

A data fingerprint keys a local file's modification time and rnnlab's data code, neither of which changes the data:
the prepared data's digests (`data/content`) decide, else the files' content digests search.json recorded at launch.
The device and the libraries are named when they differ: they can change a trial's numbers slightly.
"""

from __future__ import annotations

import json

from rnnlab.search_folder import SearchSpec

NUMERICS = ("device", "packages.torch", "packages.numpy")  # what can change a trial's numbers beyond its config


def what_changed(final: dict, result: dict, trial: dict) -> list[str]:
    """What differs between the trial's run (its result, provenance.json) and this replay besides the config and
    the data (`data_state`): the device, the libraries."""
    import numpy
    import torch

    replay = {"device": result.get("device"), "packages.torch": torch.__version__, "packages.numpy": numpy.__version__}
    changed = [f"{k} {trial[k]} -> {replay[k]}" for k in NUMERICS if trial.get(k) and replay[k] != trial[k]]
    if changed:
        return [f"the replay ran elsewhere than the trial ({', '.join(changed)}): its numbers may differ slightly"]
    return []


def reads_base_data(spec: SearchSpec, cfg) -> bool:
    """Whether `cfg` reads the data of the search's base config (every data.* field alike but the cache folder): the
    data search.json recorded at launch."""
    from rnnlab.config.overrides import to_flat_dict

    flat = json.loads(json.dumps(to_flat_dict(cfg), default=str))
    keys = [k for k in spec.config if k.startswith("data.") and k != "data.cache_dir"]
    return bool(keys) and all(flat.get(k) == spec.config[k] for k in keys)


def data_state(spec: SearchSpec, cfg, final: dict, result: dict) -> tuple[str, str | None]:
    """Whether the replay ran on the trial's data: "same", "changed" or "unknown", with the line that says why when
    their fingerprints differ. A local file's fingerprint keys its modification time, which a copy, a checkout or a
    touch changes and the data do not, and rnnlab's data code: the prepared data's digests (`data/content`) tell,
    else the files' content digests search.json recorded at launch."""
    from rnnlab.resume import same_content, same_source, source_record, what_changed_in_data

    was, now = final.get("data/fingerprint"), result.get("data/fingerprint")
    if not was or not now or was == now:
        return "same", None
    head = f"the replay's data fingerprint differs from the trial's ({was} -> {now})"
    digests = final.get("data/content"), result.get("data/content")
    if all(digests) and digests[0] == digests[1]:
        return "same", (
            f"{head}, not its data: the prepared data's digest (data/content {digests[0]}) is the trial's; a file's "
            "modification time (a copy, a checkout, a touch) or rnnlab's data code changed, not the data"
        )
    recorded = spec.data if spec.data and reads_base_data(spec, cfg) else {}
    current = source_record(cfg, now, result.get("data/commit"), result.get("data/content", "")) if recorded else {}
    changed = what_changed_in_data(recorded, current)[0] if recorded else ""
    if all(digests):  # the prepared data differ, value for value
        why = f": {changed}" if changed else f" (data/content {digests[0]} -> {digests[1]})"
        return "changed", f"the replay's data differ from the trial's (fingerprint {was} -> {now}){why}"
    if not recorded:
        return "unknown", (
            f"{head} and the search recorded no content digest of the trial's data: the data, rnnlab's data "
            "preparation or only a file's modification time changed since the trial"
        )
    if same_content(recorded, current):
        return "same", (
            f"{head}, not its data: every file's content (sha256) and the code preparing it are those the search "
            "recorded at its launch; only modification times changed (a copy, a checkout, a touch)"
        )
    if same_source(recorded, current) is not False:  # the source as recorded (or not known): the code moved
        return "unknown", f"{head}: {changed}; the data it prepares may differ"
    return "changed", f"the replay's data differ from the trial's (fingerprint {was} -> {now}): {changed}"


def verdict(ok: bool, data: str, rel_tol: float) -> str:
    """The replay's last line: whether the values agree, and on which data."""
    if not ok:
        also = "; its data differ too (above)" if data == "changed" else ""
        return f"replay differs beyond rel_tol={rel_tol}{also}"
    if data == "changed":
        return (
            f"the replay's metrics agree with the recorded ones (rel_tol={rel_tol}), but on other data than the "
            "trial's (above): the trial is not reproduced"
        )
    if data == "unknown":
        return (
            f"replay reproduces the recorded metrics (rel_tol={rel_tol}); whether on the trial's data is not known "
            "(above)"
        )
    return "replay reproduces the recorded metrics"
