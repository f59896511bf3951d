"""Checks before a search starts on a cluster: do trials fit a node, can every node write the storage and read the
data, and do W&B's mode and credentials agree.

`run_preflight(cfg, address, storage) -> list[str]` returns one message per failure, each starting with the field or
flag to change; `rnnlab preflight` prints them and exits 2. Nothing here changes the cluster: a probe file is
written to the storage and deleted again.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rnnlab.config import Config, ConfigError, DataConfig

PROBE_TIMEOUT = 120.0  # seconds for all node probes: an autoscaling node may have to start first


@dataclass
class Node:
    """What a trial could use on one node (or one node type of a cluster YAML)."""

    name: str
    cpus: float
    gpus: float
    node_id: str | None = None  # a live Ray node; None for a node type or this machine


# --- the cluster ---------------------------------------------------------------------------------------------------


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """Something answers at a `host:port` or `ray://host:port` address (ray.init would retry it for minutes,
    printing Ray's connection warnings); `auto` and no address are Ray's to find."""
    host, sep, port = (address or "").removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConfigError(
            "--address",
            f"nothing answers at {address} ({err.strerror or err}); start the cluster (ray start --head, ray up) or "
            "give its head's address: auto, ray://host:10001 or host:6379",
        ) from None


# --- where trials can run ------------------------------------------------------------------------------------------


def nodes_from_ray() -> list[Node]:
    """The live nodes of the connected Ray cluster."""
    import ray

    return [
        Node(
            name=n.get("NodeManagerAddress", n["NodeID"][:8]),
            cpus=n["Resources"].get("CPU", 0.0),
            gpus=n["Resources"].get("GPU", 0.0),
            node_id=n["NodeID"],
        )
        for n in ray.nodes()
        if n.get("Alive")
    ]


def nodes_from_cluster_config(path: str | Path) -> list[Node]:
    """The node types of a `ray up` YAML that can run trials; [] when it does not state their resources."""
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        reason = err.strerror if isinstance(err, OSError) else f"not YAML: {str(err).splitlines()[0]}"
        raise ConfigError("--cluster-config", f"cannot read {path} ({reason}); give the YAML of `ray up`") from None
    types = (config.get("available_node_types") or {}) if isinstance(config, dict) else None
    if not isinstance(types, dict) or not all(isinstance(t, dict) for t in types.values()):
        raise ConfigError(
            "--cluster-config",
            f"{path} is not a `ray up` cluster YAML (a mapping whose available_node_types maps "
            "each node type's name to its settings)",
        )
    nodes = []
    for name, node_type in types.items():
        is_head = name == config.get("head_node_type")
        if not is_head and node_type.get("max_workers", config.get("max_workers", 1)) == 0:
            continue
        resources = node_type.get("resources") or {}
        if not resources:  # the local provider: Ray detects them when the node starts
            continue
        nodes.append(Node(name=f"node type {name}", cpus=resources.get("CPU", 0), gpus=resources.get("GPU", 0)))
    return nodes


def this_machine() -> list[Node]:
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [Node(name=f"this machine ({socket.gethostname()})", cpus=os.cpu_count() or 1, gpus=gpus)]


def check_resources(cfg: Config, nodes: list[Node]) -> list[str]:
    """A trial needs one node with both its CPUs and its GPUs: Ray never splits a trial across nodes."""
    cpus, gpus = cfg.search.cpus_per_trial, cfg.search.gpus_per_trial
    if not nodes or any(n.cpus >= cpus and n.gpus >= gpus for n in nodes):
        return []
    shown = ", ".join(f"{n.name}: {n.cpus:g} CPU {n.gpus:g} GPU" for n in nodes)
    most_cpus, most_gpus = max(n.cpus for n in nodes), max(n.gpus for n in nodes)
    failures = []
    if cpus > most_cpus:
        failures.append(
            f"search.cpus_per_trial: a trial asks for {cpus:g} CPUs but the largest node has "
            f"{most_cpus:g} ({shown}); --set search.cpus_per_trial={max(most_cpus, 1):g} or add "
            "bigger nodes"
        )
    if gpus > most_gpus:
        failures.append(
            f"search.gpus_per_trial: a trial asks for {gpus:g} GPUs but no node has more than "
            f"{most_gpus:g} ({shown}); --set search.gpus_per_trial={most_gpus:g} or add GPU nodes"
        )
    if not failures:
        failures.append(
            f"search.cpus_per_trial: no node has {cpus:g} CPUs and {gpus:g} GPUs at once ({shown}); "
            "lower search.cpus_per_trial or search.gpus_per_trial"
        )
    return failures


def check_device(cfg: Config, nodes: list[Node]) -> list[str]:
    """A trial on `train.device=cuda[:N]` must see that GPU wherever Ray places it. Ray gives a trial that asks for
    `search.gpus_per_trial` > 0 its ceil(gpus_per_trial) GPUs, numbered from 0; one that asks for none may land on
    any node with its CPUs, a GPU or not (and no autoscaler adds a GPU node for it)."""
    device, gpus = cfg.train.device, cfg.search.gpus_per_trial
    if not device.startswith("cuda") or not nodes:
        return []
    index = int(device.partition(":")[2] or 0)
    if gpus > 0:  # on a node with that many GPUs (check_resources), numbered 0..ceil(gpus)-1
        if index < math.ceil(gpus):
            return []
        return [
            f"train.device: {device}, but a trial sees only the {math.ceil(gpus)} GPU(s) Ray gives it "
            f"(search.gpus_per_trial={gpus:g}), numbered from 0; use --device cuda or raise search.gpus_per_trial"
        ]
    hosts = [n for n in nodes if n.cpus >= cfg.search.cpus_per_trial]  # none: check_resources says so
    lacking = [n for n in hosts if n.gpus < index + 1]
    if not lacking:
        return []
    shown = ", ".join(f"{n.name}: {n.cpus:g} CPU {n.gpus:g} GPU" for n in lacking)
    if all(n.gpus == 0 for n in nodes):
        return [
            f"train.device: {device} asks for a GPU, but no node has one ({shown}), so every trial would fail; "
            "--device cpu (or auto), or add GPU nodes"
        ]
    return [
        f"train.device: {device}, but search.gpus_per_trial=0 lets Ray place a trial on a node without "
        f"{'a GPU' if index == 0 else f'{index + 1} GPUs'} ({shown}), where it fails; --set "
        "search.gpus_per_trial=1 (a fraction shares a GPU) to place trials on GPU nodes, or --device cpu"
    ]


# --- what every node must reach ------------------------------------------------------------------------------------


def probe_storage(storage: str) -> str | None:
    """Write and delete a probe file in `storage` (a folder or a pyarrow.fs URI); the error, or None."""
    name = f".rnnlab-preflight-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    try:
        if "://" in storage:
            import pyarrow.fs

            fs, root = pyarrow.fs.FileSystem.from_uri(storage)
            fs.create_dir(root, recursive=True)
            with fs.open_output_stream(f"{root.rstrip('/')}/{name}") as f:
                f.write(b"ok")
            fs.delete_file(f"{root.rstrip('/')}/{name}")
        else:
            folder = Path(storage).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(b"ok")
            (folder / name).unlink()
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return None


def hub_cached(cfg: DataConfig) -> bool:
    """True if the datasets or hub cache of this node holds a copy of the hub dataset `cfg.name`."""
    import datasets.config
    import huggingface_hub.constants

    flat = cfg.name.replace("/", "___")
    candidates = [
        Path(datasets.config.HF_DATASETS_CACHE) / flat,
        Path(huggingface_hub.constants.HF_HUB_CACHE) / f"datasets--{cfg.name.replace('/', '--')}",
    ]
    return any(p.exists() for p in candidates)


def probe_data(cfg: DataConfig) -> str | None:
    """Can this node get the raw data: a local file that exists, a hub dataset reachable or cached; None if so."""
    if cfg.source == "builtin":  # generated from the seed on the node itself
        return None
    from rnnlab.data import hub, sources

    if cfg.source == "local":
        try:
            sources.local_files(cfg)
        except Exception as err:  # a DataError names the field itself
            return str(err).removeprefix("data.name: ")
    elif cfg.source == "hub" and not hub_cached(cfg) and (hub.hub_offline_by_env() or not hub.hub_reachable()):
        return (
            f"the hub is unreachable and {cfg.name!r} is not in this node's datasets cache; pre-fill HF_HOME "
            "on every node or use data.source=local with a file on shared storage"
        )
    return None


def probe_node(storage: str | None, data: DataConfig) -> dict:
    """Everything one node must do for a trial, as plain values (this runs as a Ray task on each node)."""
    return {
        "host": socket.gethostname(),
        "storage": probe_storage(storage) if storage else None,
        "data": probe_data(data),
        "wandb_key": bool(os.environ.get("WANDB_API_KEY")),  # never the key itself
    }


def probe_nodes(nodes: list[Node], storage: str | None, data: DataConfig) -> dict[str, dict]:
    """`probe_node` on each live node, pinned there; a node that cannot run it reports why."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=0)(probe_node)
    refs = {
        n.name: task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False)).remote(
            storage, data
        )
        for n in nodes
    }
    results = {}
    for name, ref in refs.items():
        try:
            results[name] = ray.get(ref, timeout=PROBE_TIMEOUT)
        except Exception as err:
            results[name] = {"error": f"{type(err).__name__}: {str(err).splitlines()[-1] if str(err) else ''}"}
    return results


def check_probes(cfg: Config, storage: str | None, probes: dict[str, dict], remote: bool = True) -> list[str]:
    """Failures from the node probes; `remote` False when the only probe ran in this process (the driver)."""
    failures = []
    for node, probe in probes.items():
        if "error" in probe:
            failures.append(
                f"cluster: the preflight task could not run on {node} ({probe['error']}); every node "
                "must import rnnlab (setup_commands, or submit with a working_dir)"
            )
            continue
        if probe["storage"]:
            failures.append(
                f"--storage: {node} cannot write {storage!r} ({probe['storage']}); give a folder every "
                "node shares (NFS) or an s3:// gs:// URI the nodes' credentials may write"
            )
        if probe["data"]:
            failures.append(f"data.name: {node} cannot read the data: {probe['data']}")
        if remote and cfg.tracking.mode == "online" and not probe["wandb_key"]:
            failures.append(
                f"tracking.mode: online, but WANDB_API_KEY is not set on {node}, where trials run; "
                "forward it (cluster/submit_search.py does) or --set tracking.mode=offline and "
                "`rnnlab sync` later"
            )
    return failures


def check_tracking(cfg: Config) -> list[str]:
    """Online W&B needs a key in the driver's environment; offline and disabled need nothing."""
    if cfg.tracking.mode == "online" and not os.environ.get("WANDB_API_KEY"):
        return [
            "tracking.mode: online needs WANDB_API_KEY in the environment (export it; it is never read from a "
            "file in the repository), or --set tracking.mode=offline and `rnnlab sync` later"
        ]
    return []


# --- the whole check -----------------------------------------------------------------------------------------------


def run_preflight(
    cfg: Config,
    address: str | None = None,
    storage: str | None = "searches",
    cluster_config: str | None = None,
    log: Callable[[str], None] | None = None,
) -> list[str]:
    """Failures (field or flag first) of a search of `cfg`; [] when it can start.

    Trials must fit the live nodes of the cluster at `address` (or of an existing Ray connection) together with the
    node types of `cluster_config` (a `ray up` YAML: nodes the autoscaler may still add); with neither, this machine.
    Storage, data and W&B key are probed on every live node."""
    import ray

    log = log or (lambda message: None)
    failures = check_tracking(cfg)
    nodes = nodes_from_cluster_config(cluster_config) if cluster_config else []
    if cluster_config and not nodes:
        log(
            f"{cluster_config} states no node resources (a local-provider cluster?); connect with --address to "
            "check the live nodes"
        )
    connected_here = False
    if address or ray.is_initialized():
        if not ray.is_initialized():
            check_address(address)
            ray.init(address=address, log_to_driver=False)
            connected_here = True
        live = nodes_from_ray()
    else:
        live = [] if cluster_config else this_machine()
    try:
        failures += check_resources(cfg, nodes + live) + check_device(cfg, nodes + live)
        log("nodes: " + (", ".join(f"{n.name} ({n.cpus:g} CPU, {n.gpus:g} GPU)" for n in nodes + live) or "?"))
        if live and live[0].node_id:
            probes = probe_nodes(live, storage, cfg.data)
            failures += check_probes(cfg, storage, probes)
        elif live:
            failures += check_probes(cfg, storage, {live[0].name: probe_node(storage, cfg.data)}, remote=False)
        # else only node types: nothing runs yet, so only their resources can be checked
    finally:
        if connected_here:
            ray.shutdown()
    return failures
