"""Run an `rnnlab tune` search against a whole Ray cluster: on its head node, or as a Ray Job from your machine.

On the head (`ray submit` copies this file to ~ there and runs it with the arguments after `--`):

    ray submit cluster/aws.yaml cluster/submit_search.py -- EXPERIMENT [rnnlab tune args] [--wandb-key-from SRC]

As a Ray Job (run here; the working tree is uploaded, the job's driver runs on the head):

    python cluster/submit_search.py --job http://127.0.0.1:8265 EXPERIMENT [rnnlab tune args]

Both run `rnnlab preflight` first, then `rnnlab tune EXPERIMENT ... --address auto`. Secrets never come from a file
in the repository: WANDB_API_KEY (and HF_TOKEN) are read from the environment of the submitting process or, on
the head, from the provider's secret store (`--wandb-key-from aws-ssm:NAME` or `gcp-secret:NAME`, read with the
node's IAM role), and reach the trials as runtime_env env_vars of this job only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXCLUDES = [".git", "runs", "searches", "**/__pycache__", "*.egg-info", ".venv", ".pytest_cache", ".ruff_cache"]
FORWARDED_ENV = ("WANDB_API_KEY", "WANDB_MODE", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_BASE_URL", "HF_TOKEN")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
UNREACHABLE_PATIENCE_S = 120.0  # how long a dashboard may be out of reach while we wait on a job


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our own options; everything else (EXPERIMENT and the tune flags) goes to `rnnlab tune` unchanged."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", metavar="ADDRESS", help="submit as a Ray Job to this dashboard address instead")
    parser.add_argument("--project", default="~/rnnlab", help="on the head: the project copy of file_mounts")
    parser.add_argument(
        "--wandb-key-from", default="env", metavar="SRC", help="env (default), aws-ssm:PARAMETER or gcp-secret:SECRET"
    )
    parser.add_argument("--no-wait", action="store_true", help="--job: return once the job is submitted")
    parser.add_argument("--no-preflight", action="store_true", help="skip `rnnlab preflight`")
    return parser.parse_known_args(argv)


def preflight_args(tune_args: list[str]) -> list[str]:
    """EXPERIMENT, --storage, --set and --device of the tune arguments: what `rnnlab preflight` takes."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("experiment")
    parser.add_argument("--storage")
    parser.add_argument("--set", nargs="+", action="extend", default=[])
    parser.add_argument("--device")
    known, _ = parser.parse_known_args(tune_args)
    args = [known.experiment, *(["--storage", known.storage] if known.storage else [])]
    args += ["--set", *known.set] if known.set else []
    return args + (["--device", known.device] if known.device else [])


# --- secrets -------------------------------------------------------------------------------------------------------


def read_wandb_key(source: str) -> str | None:
    """The W&B key from the environment or the provider's secret store; never printed, never written to disk."""
    if source == "env":
        return os.environ.get("WANDB_API_KEY")
    kind, _, name = source.partition(":")
    if kind == "aws-ssm":  # a SecureString parameter; the node's instance profile needs ssm:GetParameter on it
        import boto3
        from botocore.utils import InstanceMetadataRegionFetcher

        region = os.environ.get("AWS_REGION") or InstanceMetadataRegionFetcher().retrieve_region()
        response = boto3.client("ssm", region_name=region).get_parameter(Name=name, WithDecryption=True)
        return response["Parameter"]["Value"]
    if kind == "gcp-secret":  # the node's service account needs roles/secretmanager.secretAccessor on it
        command = ["gcloud", "secrets", "versions", "access", "latest", f"--secret={name}"]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()
    raise SystemExit(f"--wandb-key-from: unknown source {source!r}; valid: env, aws-ssm:NAME, gcp-secret:NAME")


def forwarded_env(wandb_key: str | None) -> dict[str, str]:
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    if wandb_key:
        env["WANDB_API_KEY"] = wandb_key
    return env


# --- on the head -----------------------------------------------------------------------------------------------


def run_on_head(opts: argparse.Namespace, tune_args: list[str]) -> int:
    """Join the cluster with the project as working_dir (trials import it and find relative data files), then
    preflight and search in this process; the search's driver is this process."""
    import ray

    project = Path(opts.project).expanduser().resolve()
    os.chdir(project)
    sys.path.insert(0, str(project))
    env = forwarded_env(read_wandb_key(opts.wandb_key_from))
    os.environ.update(env)
    ray.init(address="auto", runtime_env={"working_dir": str(project), "excludes": EXCLUDES, "env_vars": env})
    from rnnlab.cli import main

    bootstrap = Path("~/ray_bootstrap_config.yaml").expanduser()  # the node types the autoscaler may add
    extra = ["--cluster-config", str(bootstrap)] if bootstrap.is_file() else []
    if not opts.no_preflight and (code := main(["preflight", *preflight_args(tune_args), *extra])) != 0:
        return code
    address = [] if "--address" in tune_args else ["--address", "auto"]
    return main(["tune", *tune_args, *address])


# --- as a Ray Job --------------------------------------------------------------------------------------------------


def job_entrypoint(opts: argparse.Namespace, tune_args: list[str]) -> str:
    """`python -m rnnlab.cli` works whether or not the cluster has rnnlab installed: the working dir is on sys.path."""
    steps = []
    if not opts.no_preflight:
        steps.append(["python", "-m", "rnnlab.cli", "preflight", *preflight_args(tune_args), "--address", "auto"])
    address = [] if "--address" in tune_args else ["--address", "auto"]
    steps.append(["python", "-m", "rnnlab.cli", "tune", *tune_args, *address])
    return " && ".join(shlex.join(step) for step in steps)


def submit_job(opts: argparse.Namespace, tune_args: list[str]) -> int:
    """Submit with JobSubmissionClient: the env_vars come from this process's environment at submit time. With
    token auth on, the client sends the token from RAY_AUTH_TOKEN or ~/.ray/auth_token (RAY_AUTH_MODE=token)."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(opts.job)
    runtime_env = {"working_dir": str(REPO), "excludes": EXCLUDES, "env_vars": forwarded_env(read_wandb_key("env"))}
    job_id = client.submit_job(entrypoint=job_entrypoint(opts, tune_args), runtime_env=runtime_env)
    print(f"submitted Ray Job {job_id} to {opts.job}; logs: ray job logs -f {job_id} --address {opts.job}")
    if opts.no_wait:
        return 0
    while (status := job_status(client, opts.job, job_id)) not in TERMINAL:
        time.sleep(2)
    print(client.get_job_logs(job_id))
    print(f"Ray Job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def job_status(client, address: str, job_id: str, patience: float = UNREACHABLE_PATIENCE_S) -> str:
    """The job's status name. A dashboard out of reach (a network blip, a busy head) is asked again for `patience`
    seconds; then this process stops with the command that follows the job, which runs on without us."""
    import requests

    deadline = time.monotonic() + patience
    while True:
        try:
            return str(client.get_job_status(job_id)).split(".")[-1]
        except (requests.ConnectionError, requests.Timeout) as err:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"lost the Ray dashboard at {address} for {patience:.0f} s ({type(err).__name__}); the job may "
                    f"still be running: ray job status {job_id} --address {address}"
                ) from None
            time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    opts, tune_args = parse_args(sys.argv[1:] if argv is None else argv)
    if not tune_args:
        raise SystemExit("give the experiment (and any `rnnlab tune` arguments) after the options")
    return submit_job(opts, tune_args) if opts.job else run_on_head(opts, tune_args)


if __name__ == "__main__":
    sys.exit(main())
