"""What a search checks before launch: the storage is writable, its folder is free (or holds the search resumed),
the search space samples into valid configs, a trial fits a node, the cluster's address answers."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from rnnlab.config import Config, ConfigError
from rnnlab.registries import apply_overrides
from rnnlab.search_folder import SEARCH_FILE, SearchSpec
from rnnlab.storage import holds_search, is_uri, redact, same_place, search_uri

logger = logging.getLogger(__name__)


class SearchExists(ConfigError):
    """The folder (or the bucket's) already holds a search."""


def check_search_folder(spec: SearchSpec, resume: bool) -> None:
    """Before taking the folder and again once held: another driver may have just used it."""
    if resume:
        SearchSpec.load(spec.folder)
    elif Path(spec.folder).exists() and not Path(spec.folder).is_dir():
        raise ConfigError("--name", f"{spec.folder} is a file, not a folder; choose another --name or --storage")
    elif Path(spec.folder, SEARCH_FILE).is_file():
        raise SearchExists("--name", held_folder(spec))
    elif holds_search(search_uri(spec)):  # a new search never overwrites one in the bucket
        raise SearchExists(
            "--name",
            f"{redact(search_uri(spec))} already holds a search; continue it with rnnlab "
            "tune URI --resume, or choose another --name",
        )


def held_folder(spec: SearchSpec) -> str:
    """Why a new search cannot take its local folder, which holds a search: for a bucket search, ./searches/<name>
    may hold another one (a local search, or one of another bucket), which --resume would not continue."""
    if (uri := search_uri(spec)) is None:
        return f"{spec.folder} already holds a search; pass --resume to continue it or another --name"
    held = search_uri(SearchSpec.load(spec.folder))
    if held is not None and same_place(held, uri):
        return f"{spec.folder} already holds {redact(uri)}; continue it with rnnlab tune URI --resume or another --name"
    return (
        f"{spec.folder}, the local folder of {redact(uri)}, holds another search "
        f"({redact(held) if held else 'a local one'}); run from another folder, or choose another --name"
    )


def check_storage(storage: str) -> None:
    """Fail before launch (ConfigError, exit 2) if Ray could not write the search's state to `storage`."""
    if is_uri(storage):
        from rnnlab.storage import resolve

        resolve(storage)
        return
    path = Path(storage)
    probe = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise ConfigError("--storage", f"{probe} is not a writable folder; choose another --storage")


def check_search_space(space, cfg: Config, pinned: Iterable[str] = (), draws: int = 16) -> list[Config]:
    """Sample the space with throwaway in-memory Optuna trials and apply each draw to the config: an inverted range,
    an unknown key or a wrong type fails here (ConfigError, exit 2), before Ray starts, and so does a field given
    (`pinned`: the search's --set) that the space sets, whose value would be ignored. Returns the drawn configs."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=cfg.seed))
    configs, suggested, searched = [], False, set()
    for _ in range(draws):  # random draws reach the branches of a conditional space
        trial = study.ask()
        try:
            params = space(trial)
        except ConfigError:
            raise
        except Exception as err:
            raise ConfigError(
                "search_space",
                f"sampling it failed ({type(err).__name__}: {err}); check the "
                "trial.suggest_* calls (low <= high, non-empty choices)",
            ) from None
        if not isinstance(params, dict):
            raise ConfigError("search_space", f"must return a dict of dotted config paths, got {type(params).__name__}")
        configs.append(apply_overrides(cfg, params))
        suggested = suggested or bool(params or trial.params)
        searched |= params.keys() | trial.params.keys()
        for name in params.keys() & trial.params.keys():  # Ray sends the returned value, Optuna keeps the suggested
            if params[name] != trial.params[name]:
                raise ConfigError(
                    "search_space",
                    f"returns {name}={params[name]!r} for the suggested {name}={trial.params[name]!r}: the trial "
                    "would run the returned value while the study, the report and best_overrides.txt record the "
                    f"suggested one; suggest the values themselves (trial.suggest_categorical({name!r}, [...]))",
                )
        for name in trial.params.keys() - params.keys():  # Ray sends every Optuna parameter to the trial as a path
            try:
                apply_overrides(cfg, {name: trial.params[name]})
            except ConfigError as err:
                raise ConfigError(
                    "search_space",
                    f"trial.suggest_*({name!r}, ...): the trial receives every suggested name as a config path "
                    f"too, and {err.message}; name the parameter by the dotted path it sets",
                ) from None
        study.tell(trial, 0.0)
    if not suggested:  # every trial would train the same config with the same seeds: a search of one point
        raise ConfigError(
            "search_space",
            f"suggests no parameter (it returned {{}} in {draws} draws), so every trial would be the same "
            f"config with the same seed{'s' if cfg.search.seeds > 1 else ''}; suggest at least one (a seed "
            "too: trial.suggest_int('seed', 0, 9)), or run one config with rnnlab run (--set search.seeds=N "
            "for replicates)",
        )
    if clash := sorted(set(pinned) & searched):  # the space's value wins: the --set was silently ignored
        raise ConfigError(
            clash[0],
            "given with --set, but search_space sets it for its trials, so the value given would be ignored; drop "
            "it from --set, or fix it in search_space",
        )
    return configs


def check_address(address: str | None) -> None:
    """`--address` answers (rnnlab.preflight.check_address), unless Ray is already connected."""
    import ray

    from rnnlab.preflight import check_address as answers

    if not ray.is_initialized():
        answers(address)


def check_fits(cfg: Config, address: str | None) -> None:
    """A trial must fit one live node (CPUs and GPUs): fail now (exit 2) on this machine's Ray; on a cluster, whose
    autoscaler may still add a bigger node, say that the trials will wait. A CUDA device no trial would see fails
    either way: no node the autoscaler adds gives a trial a GPU it does not ask for."""
    from rnnlab.preflight import check_device, check_resources, nodes_from_ray

    nodes = nodes_from_ray()
    for failure in check_device(cfg, nodes):
        raise ConfigError(*failure.split(": ", 1))
    failures = check_resources(cfg, nodes)
    if failures and address is None:
        raise ConfigError("search.cpus_per_trial", "; ".join(f.split(": ", 1)[1] for f in failures))
    for failure in failures:
        logger.warning(f"{failure} (trials wait until the autoscaler adds such a node)")
