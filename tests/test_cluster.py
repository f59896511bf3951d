"""cluster/: launcher configs against Ray's own schema, preflight on a real Ray head, a search as a Ray Job with
token auth on, and (slow) `ray up` / `ray submit` / `ray down` of a local-provider cluster over loopback SSH.

The machine may be shared: every Ray this file starts has its own temp dir and ports, and is stopped by killing
the processes it started (its session), never with `ray stop`, which stops every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from ports import free_ports

REPO = Path(__file__).resolve().parent.parent
CLUSTER = REPO / "cluster"
LAUNCHER_CONFIGS = sorted(p for p in CLUSTER.glob("*.yaml") if not p.name.startswith("kuberay"))
SHRUNK = [
    "--samples",
    "2",
    "--concurrency",
    "2",
    "--set",
    "train.epochs=1",
    "train.max_batches=2",
    "data.num_samples=200",
    "search.scheduler=none",
]


def kill_session(pid: int, marker: str | None = None, grace: float = 10.0) -> None:
    """SIGTERM the session led by `pid`, then SIGKILL what is left of it and of processes whose command line holds
    `marker` (this test's private temp dir): only processes this test started."""
    import psutil

    def ours() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            if proc.info["status"] == psutil.STATUS_ZOMBIE:  # dead, waiting for its parent to reap it
                continue
            try:
                if os.getsid(proc.pid) == pid or (marker and marker in " ".join(proc.info["cmdline"] or [])):
                    found.append(proc)
            except (OSError, psutil.Error):
                continue
        return found

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in ours():
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
        deadline = time.time() + grace
        while ours() and time.time() < deadline:
            time.sleep(0.5)


# --- launcher configs ----------------------------------------------------------------------------------------------


def validate_launcher_config(config: dict) -> None:
    """What `ray up` does before touching a cloud: fill defaults (prepare_config), then Ray's schema validator."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=lambda p: p.name)
def test_launcher_config_validates_against_ray_schema(path):
    config = yaml.safe_load(path.read_text())
    validate_launcher_config(config)
    assert "WANDB_API_KEY" not in path.read_text().replace("$WANDB_API_KEY", "")  # no secret in a config
    for command in [*config["head_start_ray_commands"], *config["worker_start_ray_commands"]]:
        if "ray start" in command:  # at info, Ray's runtime env agent logs a job's env_vars, the W&B key among them
            assert "RAY_AUTH_MODE=token RAY_LOGGER_LEVEL=warning" in command.split("ray start")[0], command
    if config["provider"]["type"] != "local":  # the local provider has one node type: head_ip + worker_ips
        types = config["available_node_types"]
        assert {"head", "cpu_worker", "gpu_worker"} <= set(types)
        assert types["gpu_worker"]["resources"]["GPU"] >= 1
        assert all(0 <= t.get("min_workers", 0) <= t["max_workers"] for n, t in types.items() if n != "head")


def test_launcher_config_validation_rejects_a_typo():
    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    config["available_node_types"]["cpu_worker"]["max_worker"] = 3  # not a field
    with pytest.raises(Exception, match="max_worker"):
        validate_launcher_config(config)


def test_launcher_configs_exist():
    assert {p.name for p in LAUNCHER_CONFIGS} == {"aws.yaml", "gcp.yaml", "local.yaml"}


def test_preflight_against_cluster_config_node_types(capsys):
    from rnnlab.cli import main

    code = main(
        [
            "preflight",
            "search_digits",
            "--cluster-config",
            str(CLUSTER / "aws.yaml"),
            "--set",
            "search.gpus_per_trial=2",
        ]
    )
    assert code == 2
    assert "search.gpus_per_trial" in capsys.readouterr().err


# --- a real Ray head (subprocess), token auth on -------------------------------------------------------------------


@dataclass
class Head:
    address: str  # GCS host:port
    dashboard: str | None  # http://127.0.0.1:PORT (jobs API); None without ray[default]

    def jobs_api(self) -> str:
        if self.dashboard is None:
            pytest.skip("the Ray Jobs API needs the dashboard: pip install 'ray[default]'")
        return self.dashboard

    env: dict  # the environment a client of this head needs (token auth on)
    temp_dir: str = ""  # its --temp-dir: ray-start.log and the session's logs

    def logs(self, tail: int = 40) -> str:
        """The end of `ray start`'s output and of the GCS, raylet and dashboard logs: why a head stopped answering."""
        root = Path(self.temp_dir)
        logs = root / "session_latest" / "logs"
        paths = [root / "ray-start.log", logs / "gcs_server.out", logs / "raylet.out", *sorted(logs.glob("dashboard*"))]
        parts = []
        for path in paths:
            if path.is_file():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"--- {path.relative_to(root)}\n" + "\n".join(lines))
        return "\n".join(parts)


@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head` with RAY_AUTH_MODE=token, its own temp dir and ports; stopped by killing its session."""
    temp_dir = tempfile.mkdtemp(prefix="rnnlab-ray-")  # short: Ray's socket paths live under it
    gcs, dashboard, agent, metrics, runtime_env = free_ports(5)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "PYTHONPATH": str(REPO),
        "RAY_USAGE_STATS_ENABLED": "0",
        "WANDB_MODE": "offline",
    }
    env.pop("RAY_ADDRESS", None)
    from ray._private.utils import get_dashboard_dependency_error

    no_dashboard = get_dashboard_dependency_error()  # the Jobs API needs ray[default]
    command = [
        shutil.which("ray"),
        "start",
        "--head",
        "--block",
        "--num-cpus=2",
        "--num-gpus=0",
        f"--port={gcs}",
        f"--include-dashboard={'false' if no_dashboard else 'true'}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        f"--dashboard-agent-listen-port={agent}",
        f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={runtime_env}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    with open(Path(temp_dir) / "ray-start.log", "w") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if no_dashboard and not port_free("127.0.0.1", gcs):
                    break
                urllib.request.urlopen(f"{url}/api/version", timeout=2)
                break
            except urllib.error.HTTPError:  # up, and asking for the token
                break
            except Exception:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"ray start --head failed:\n{(Path(temp_dir) / 'ray-start.log').read_text()}")
                time.sleep(1)
        head = Head(f"127.0.0.1:{gcs}", None if no_dashboard else url, env, temp_dir)
        wait_for_a_live_node(head, proc, deadline)
        yield head
    finally:
        kill_session(proc.pid, marker=temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


NODE_UP = "import ray; ray.init(address={address!r}); assert any(n['Alive'] for n in ray.nodes())"


def wait_for_a_live_node(head: Head, proc: subprocess.Popen, deadline: float) -> None:
    """A head's dashboard answers before its raylet has registered: a client then fails with "No node info found".
    Wait until a driver connects and sees the node alive."""
    while True:
        probe = [sys.executable, "-c", NODE_UP.format(address=head.address)]
        done = subprocess.run(probe, env=head.env, capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            return
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail(f"the Ray head never had a live node:\n{done.stderr[-2000:]}\n{head.logs()}")
        time.sleep(1)


def rnnlab(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnlab.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_preflight_catches_a_trial_larger_than_any_node(ray_head, tmp_path):
    done = rnnlab(
        [
            "preflight",
            "search_digits",
            "--address",
            ray_head.address,
            "--storage",
            str(tmp_path),
            "--set",
            "search.cpus_per_trial=64",
        ],
        ray_head.env,
    )
    assert done.returncode == 2, done.stdout + done.stderr + ray_head.logs()
    assert "search.cpus_per_trial" in done.stderr
    assert "64 CPUs but the largest node has 2" in done.stderr


@pytest.mark.slow
def test_preflight_passes_and_probes_every_node(ray_head, tmp_path):
    done = rnnlab(
        ["preflight", "search_digits", "--address", ray_head.address, "--storage", str(tmp_path)], ray_head.env
    )
    assert done.returncode == 0, done.stdout + done.stderr + ray_head.logs()
    assert "preflight: ok" in done.stdout
    assert list(tmp_path.iterdir()) == []  # the probe file is gone again


def test_preflight_online_wandb_without_key_names_the_field(tmp_path, monkeypatch, capsys):
    from rnnlab.cli import main

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    code = main(["preflight", "search_digits", "--storage", str(tmp_path), "--set", "tracking.mode=online"])
    assert code == 2
    err = capsys.readouterr().err
    assert "tracking.mode: online needs WANDB_API_KEY" in err
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert main(["preflight", "search_digits", "--storage", str(tmp_path), "--set", "tracking.mode=online"]) == 0
    assert "x" * 40 not in capsys.readouterr().out  # the key is never printed


def test_jobs_api_rejects_a_wrong_token(ray_head):
    env = {**ray_head.env, "RAY_AUTH_TOKEN": "0" * 64}
    done = subprocess.run(
        [shutil.which("ray"), "job", "list", "--address", ray_head.jobs_api()],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "auth" in (done.stdout + done.stderr).lower(), done.stdout + done.stderr + ray_head.logs()


def test_waiting_on_a_job_survives_a_dashboard_blip_and_names_the_job_when_it_is_gone():
    """submit_search.py polls the job's status: a dashboard out of reach (here a port nothing listens on, a real
    refused connection) is asked again, and after the patience the submitter exits with the command to follow it."""
    import importlib.util

    import requests

    module_spec = importlib.util.spec_from_file_location("submit_search", CLUSTER / "submit_search.py")
    submit_search = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(submit_search)
    (port,) = free_ports(1)

    class Dashboard:  # answers once it has refused `refusals` times
        def __init__(self, refusals: int):
            self.refusals = refusals

        def get_job_status(self, job_id: str) -> str:
            if self.refusals:
                self.refusals -= 1
                requests.get(f"http://127.0.0.1:{port}/api/jobs/{job_id}", timeout=5)
            return "JobStatus.SUCCEEDED"

    assert submit_search.job_status(Dashboard(refusals=1), "http://h:8265", "raysubmit_x", patience=30) == "SUCCEEDED"
    with pytest.raises(SystemExit) as gone:
        submit_search.job_status(Dashboard(refusals=99), "http://h:8265", "raysubmit_x", patience=0)
    assert "lost the Ray dashboard at http://h:8265" in str(gone.value)
    assert "ray job status raysubmit_x --address http://h:8265" in str(gone.value)


@pytest.mark.slow
def test_search_as_ray_job_with_token_auth(ray_head, tmp_path):
    storage = tmp_path / "searches"
    command = [
        sys.executable,
        str(CLUSTER / "submit_search.py"),
        "--job",
        ray_head.jobs_api(),
        "experiments/search_digits.py",
        *SHRUNK,
        "--storage",
        str(storage),
        "--name",
        "job-search",
    ]
    started = time.time()
    done = subprocess.run(command, cwd=REPO, env=ray_head.env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:] + ray_head.logs()
    assert "SUCCEEDED" in done.stdout
    assert "preflight: ok" in done.stdout
    search = storage / "job-search"
    assert json.loads((search / "search.json").read_text())["name"] == "job-search"
    trials = [p for p in (search / "trials").iterdir() if (p / "result.json").is_file()]
    assert len(trials) == 2, sorted(p.name for p in search.rglob("*"))[:50]
    print(f"Ray Job search: {time.time() - started:.1f} s")


@pytest.mark.slow
def test_plain_ray_job_submit_cli_with_token_auth(ray_head, tmp_path):
    """The documented `ray job submit --working-dir .` path (here a preflight, the quick part of a search)."""
    runtime_env = json.dumps({"excludes": [".git", "runs", "searches", "**/__pycache__"]})
    command = [
        shutil.which("ray"),
        "job",
        "submit",
        "--address",
        ray_head.jobs_api(),
        "--working-dir",
        ".",
        "--runtime-env-json",
        runtime_env,
        "--",
        "python",
        "-m",
        "rnnlab.cli",
        "preflight",
        "experiments/search_digits.py",
        "--address",
        "auto",
        "--storage",
        str(tmp_path),
    ]
    done = subprocess.run(command, cwd=REPO, env=ray_head.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + ray_head.logs()
    assert "preflight: ok" in done.stdout
    assert "succeeded" in done.stdout.lower()


def test_kuberay_manifest_holds_no_secret():
    manifest = yaml.safe_load((CLUSTER / "kuberay-rayjob.yaml").read_text())
    assert manifest["kind"] == "RayJob"
    assert manifest["spec"]["rayClusterSpec"]["authOptions"] == {"mode": "token"}
    for group in [
        manifest["spec"]["rayClusterSpec"]["headGroupSpec"],
        *manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"],
    ]:
        for container in group["template"]["spec"]["containers"]:
            for var in container.get("env", []):
                assert "value" not in var or var["name"] not in ("WANDB_API_KEY", "RAY_AUTH_TOKEN")


# --- ray up / ray submit / ray down of a local-provider cluster over loopback SSH ----------------------------------


def ensure_sshd() -> str | None:
    """The sshd binary, installing openssh-server (and rsync, which the launcher uses) with apt when missing."""
    if not (shutil.which("sshd") or Path("/usr/sbin/sshd").exists()) or not shutil.which("rsync"):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            return None
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "openssh-server", "rsync"], env=env, capture_output=True, timeout=900
        )
    return shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


@dataclass
class Loopback:
    folder: Path  # private temp folder: keys, token, sshd config, the "node" side
    key: Path
    pid: int  # the session leader: unshare, whose PID namespace holds sshd and everything started over SSH
    wandb_key: str = ""  # planted in the node's environment: submit_search.py forwards it to the trials

    @property
    def cluster_name(self) -> str:
        return f"rnnlab-e2e-{self.folder.name[-8:]}"

    def remove_launcher_files(self) -> None:
        """The launcher's client-side state, lock and config cache of this cluster (under the temp dir)."""
        tmp = Path(tempfile.gettempdir())
        for path in [*(tmp / "ray").glob(f"cluster-{self.cluster_name}.*"), *tmp.glob("ray-config-*")]:
            with contextlib.suppress(OSError):
                if path.name.startswith("cluster-") or self.cluster_name in path.read_text(errors="ignore"):
                    path.unlink()

    def ssh(self, command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                "ssh",
                "-i",
                str(self.key),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "root@127.0.0.1",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def loopback_sshd():
    """sshd on 127.0.0.1:22 with a throwaway key, in its own PID namespace and a private /tmp/ray.

    The launcher knows no SSH port other than 22. The namespace matters on a shared machine: `ray up` and `ray down`
    run `ray stop` on the node, which stops every Ray process it can see; in here it sees only this cluster's.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root: installs and runs sshd, logs in as root over loopback")
    if not shutil.which("unshare"):
        pytest.skip("needs unshare (util-linux) to keep the test cluster in its own PID namespace")
    sshd = ensure_sshd()
    if sshd is None:
        pytest.skip("openssh-server/rsync missing and apt-get unavailable to install them")
    if not port_free("127.0.0.1", 22):
        pytest.skip("127.0.0.1:22 is taken; the Ray launcher cannot use another SSH port")
    folder = Path(tempfile.mkdtemp(prefix="rnnlab-e2e-"))
    key, host_key = folder / "id_ed25519", folder / "host_ed25519"
    for path in (key, host_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    shutil.copy(f"{key}.pub", folder / "authorized_keys")
    (folder / "token").write_text(secrets.token_hex(32))
    wandb_key = secrets.token_hex(20)
    (folder / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort 22\nHostKey {host_key}\nAuthorizedKeysFile {folder}/authorized_keys\n"
        f"PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"UsePAM no\nStrictModes no\nPidFile {folder}/sshd.pid\nMaxStartups 50\nMaxSessions 50\n"
        # The node's token path: `file_mounts` puts the submitter's token there (the real configs use ~/.ray).
        f"SetEnv RAY_AUTH_TOKEN_PATH={folder}/node/auth_token WANDB_API_KEY={wandb_key}\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    inner = f"mkdir -p /tmp/ray && mount -t tmpfs tmpfs /tmp/ray && exec {sshd} -D -e -f {folder}/sshd_config"
    with open(folder / "sshd.log", "w") as log:
        proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--propagation", "private", "sh", "-c", inner],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    home_files = [Path.home() / n for n in ("ray_bootstrap_config.yaml", "ray_bootstrap_key.pem", "submit_search.py")]
    existed = {p for p in home_files if p.exists()}
    try:
        deadline = time.time() + 30
        while port_free("127.0.0.1", 22):
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"sshd did not start:\n{(folder / 'sshd.log').read_text()}")
            time.sleep(0.5)
        loopback = Loopback(folder=folder, key=key, pid=proc.pid, wandb_key=wandb_key)
        probe = loopback.ssh("echo ok")
        assert probe.stdout.strip() == "ok", probe.stderr
        yield loopback
    finally:
        kill_session(proc.pid)  # ends the namespace, and with it whatever `ray down` left
        Loopback(folder=folder, key=key, pid=proc.pid).remove_launcher_files()
        for path in set(home_files) - existed:  # what the launcher put in the node's (here: our) home
            path.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


def loopback_cluster_config(loopback: Loopback) -> dict:
    """cluster/local.yaml with the head on 127.0.0.1, no workers, the throwaway key, the project and token synced
    into the test folder, no setup commands (the project's dependencies are installed here) and free ports."""
    config = yaml.safe_load((CLUSTER / "local.yaml").read_text())
    node = loopback.folder / "node"
    config["cluster_name"] = loopback.cluster_name
    config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    config.update(min_workers=0, max_workers=0)
    config["auth"] = {"ssh_user": "root", "ssh_private_key": str(loopback.key)}
    config["file_mounts"] = {str(node / "rnnlab"): str(REPO), str(node / "auth_token"): str(loopback.folder / "token")}
    config["setup_commands"] = []
    gcs, dashboard, client, agent, metrics, runtime_env = free_ports(6)
    ports = (
        f"--port={gcs} --dashboard-port={dashboard} --ray-client-server-port={client} "
        f"--dashboard-agent-listen-port={agent} --metrics-export-port={metrics} "
        f"--runtime-env-agent-port={runtime_env} --num-cpus=2"
    )
    config["head_start_ray_commands"] = [c.replace("--port=6379", ports) for c in config["head_start_ray_commands"]]
    assert any(ports in c for c in config["head_start_ray_commands"])
    return config


@pytest.mark.slow
def test_ray_up_submit_down_on_loopback(loopback_sshd, tmp_path):
    config_path = loopback_sshd.folder / "cluster.yaml"
    config_path.write_text(yaml.safe_dump(loopback_cluster_config(loopback_sshd)))
    validate_launcher_config(yaml.safe_load(config_path.read_text()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    storage = loopback_sshd.folder / "storage"  # a folder the (single) node shares with us, as NFS would

    def ray(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [shutil.which("ray"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
        )
        print(f"$ ray {' '.join(args)}\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}")
        return done

    timings = {}
    try:
        started = time.time()
        up = ray("up", "-y", "--no-config-cache", str(config_path))
        timings["up"] = time.time() - started
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        started = time.time()
        submit = ray(
            "submit",
            "--no-config-cache",
            str(config_path),
            str(CLUSTER / "submit_search.py"),
            "--",
            "experiments/search_digits.py",
            "--project",
            str(loopback_sshd.folder / "node" / "rnnlab"),
            *SHRUNK,
            "--storage",
            str(storage),
            "--name",
            "e2e",
        )
        timings["submit"] = time.time() - started
        assert submit.returncode == 0, submit.stdout[-4000:] + submit.stderr[-4000:]
        assert "preflight: ok" in submit.stdout
        search = storage / "e2e"
        assert json.loads((search / "search.json").read_text())["name"] == "e2e"
        trials = [p for p in (search / "trials").iterdir() if (p / "result.json").is_file()]
        assert len(trials) == 2
        wrong_token = loopback_sshd.ssh(  # token auth is on in the cluster `ray up` started
            "RAY_AUTH_MODE=token RAY_AUTH_TOKEN="
            + "0" * 64
            + " bash --login -i -c "
            + shlex.quote("python -c 'import ray; ray.init(address=\"auto\")'")
            + " 2>&1"
        )
        assert wrong_token.returncode != 0 and "auth" in wrong_token.stdout.lower(), wrong_token.stdout[-2000:]
        # the W&B key reached the trials as the job's runtime env, which Ray's runtime env agent logs at info:
        # the config's nodes log warnings and up, so no file of the node's Ray, nor the search, holds the key
        holding = loopback_sshd.ssh(f"grep -rl {loopback_sshd.wandb_key} /tmp/ray {storage} || true")
        assert holding.returncode == 0 and holding.stdout.strip() == "", holding.stdout[-2000:] + holding.stderr
        sessions = loopback_sshd.ssh("ls -d /tmp/ray/session_*/logs/runtime_env_agent.log")
        assert sessions.returncode == 0, "the node's Ray logs are where the check looked"
    finally:
        started = time.time()
        down = ray("down", "-y", str(config_path))
        timings["down"] = time.time() - started
        print("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    left = loopback_sshd.ssh("pgrep -af raylet")  # as the node sees it: its own PID namespace
    assert left.stdout.strip() == "", left.stdout
