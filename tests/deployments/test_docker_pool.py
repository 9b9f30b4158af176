"""The worker image, really built, and a docker work pool running the benchmark's units in its containers.

A private ``dockerd`` (no bridge, host network only); a base image made by ``debootstrap`` (no registry is reachable)
with this machine's PyTorch (the Makefile's, from local disk) installed system-wide, in the place of the Dockerfile's
default base, PyTorch's own image; and the other wheels the image installs handed to its build by a loopback server.
The cluster is the process cluster's (server on PostgreSQL, S3 on moto) with its GPU pool of type docker, served by a
prefect-docker worker."""

import functools
import hashlib
import http.server
import json
import os
import secrets
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolUpdate

import docker
from tests.conftest import make_bucket
from tests.debian_base import CACHE
from tests.deployments.conftest import REPO
from tests.deployments.test_deployment_files import CREDENTIAL
from tests.deployments.test_work_pools import api, trigger, unit_runs
from tests.docker_daemon import Dockerd, DockerUnavailable, debian_base_image, pytorch_base_image, throwaway_dockerd
from tests.figures import FIGURES
from tests.pipeline.helpers import content_digests, small_config, undisturbed_run
from tests.ports import free_ports
from tint_core.pipeline.config import ExecutionConfig
from tint_core.store import ArtifactStore

# Building the image (gigabytes of PyTorch) and running units in its containers outlast the suite's 10 minutes per
# test on a busy two-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

IMAGE = "tint-worker:test"
POSTGRES_IMAGE = "tint-test/postgres-standin:15"
figures: list[str] = FIGURES["worker image and docker pool"]


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Dockerd]:
    try:
        with throwaway_dockerd() as daemon:
            yield daemon
    except DockerUnavailable as reason:
        pytest.skip(f"the docker pool's tests start their own dockerd: {reason}")


def wheelhouse(dockerd: Dockerd, base: str) -> Path:
    """The wheels the image's build installs over ``base`` (the project's dependencies that the base lacks, and its
    build backend), in a folder kept between runs. The base's own pip chooses them, in a throw-away container on the
    host network with this machine's certificates mounted for the download only: what the base has installed
    (PyTorch) counts, and markers such as ``python_full_version < "3.11.3"`` (redis needs async-timeout there) depend
    on the Python that installs. A completed set is marked, and not fetched again."""
    folder = CACHE / "wheelhouse"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    requirements = [*project["project"]["dependencies"], *project["project"]["optional-dependencies"]["docker"]]
    backend = project["build-system"]["requires"]
    # The base's layers, by content (an imported image's id changes with its creation time, every run).
    marker = json.dumps([dockerd.client.images.get(base).attrs["RootFS"]["Layers"], requirements, backend])
    complete = folder / f".complete-{hashlib.sha256(marker.encode()).hexdigest()[:16]}"
    if complete.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    certificates = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    # What a resolution over the base installs (pip's report), then exactly those files, and the build backend.
    urls = ('import json; print(*(item["download_info"]["url"] '
            'for item in json.load(open("/tmp/report.json"))["install"]))')  # fmt: skip
    script = (f"python3 -m venv --system-site-packages /tmp/venv && /tmp/venv/bin/pip install -q --dry-run --report "
              f"/tmp/report.json {shlex.join(requirements)} && /tmp/venv/bin/pip download -q --no-deps --dest /wheels "
              f'$(python3 -c "$URLS") {shlex.join(backend)}')  # fmt: skip
    try:
        dockerd.client.containers.run(base, ["bash", "-c", script], network_mode="host", remove=True,
                                      environment={"PIP_CERT": "/tmp/certificates.crt", "URLS": urls},
                                      volumes={str(folder): {"bind": "/wheels", "mode": "rw"},
                                               certificates: {"bind": "/tmp/certificates.crt", "mode": "ro"}})  # fmt: skip
    except docker.errors.ContainerError as error:
        raise RuntimeError(f"the base image's pip could not gather the wheels: {error.stderr}") from None
    complete.touch()
    return folder


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (the base class's name)
        pass


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """``folder`` listed over HTTP on 127.0.0.1 (pip's --find-links reads the listing); yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _base(make: Callable[[Dockerd], tuple[str, float]], dockerd: Dockerd, what: str, figure: str) -> str:
    """A base image made by ``make`` (skipped, saying why, where it cannot be made here); its time in the figures."""
    try:
        base, seconds = make(dockerd)
    except DockerUnavailable as reason:
        pytest.skip(f"the worker image is built on {what}: {reason}")
    figures.append(f"{figure}: {seconds:.0f} s")
    return base


@pytest.fixture(scope="module")
def debian_base(dockerd) -> str:
    return _base(debian_base_image, dockerd, "a base made by debootstrap",
                 "Debian base image (debootstrap, unless cached, then imported)")  # fmt: skip


@pytest.fixture(scope="module")
def pytorch_base(dockerd, debian_base) -> str:
    return _base(pytorch_base_image, dockerd, "a stand-in for PyTorch's image",
                 "PyTorch base stand-in (the Debian base with this machine's PyTorch, imported)")  # fmt: skip


@pytest.fixture(scope="module")
def worker_image(dockerd, pytorch_base, tmp_path_factory) -> str:
    """docker/Dockerfile built as for GPU workers, PyTorch from the base (the stand-in), as IMAGE; its log kept."""
    base = pytorch_base
    started = time.perf_counter()
    wheels = wheelhouse(dockerd, base)
    wheel_seconds = time.perf_counter() - started
    log = tmp_path_factory.mktemp("image") / "build.log"
    started = time.perf_counter()
    with served(wheels) as url, open(log, "w") as output:
        build_args = {"BASE_IMAGE": base, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": url}
        for chunk in dockerd.client.api.build(path=str(REPO), dockerfile="docker/Dockerfile", tag=IMAGE,
                                              buildargs=build_args, network_mode="host", rm=True, forcerm=True,
                                              decode=True):  # fmt: skip
            output.write(chunk.get("stream", "") + (json.dumps(chunk["error"]) + "\n" if "error" in chunk else ""))
            if "error" in chunk:
                output.flush()
                pytest.fail(f"the image did not build: {chunk['error']}\n{log.read_text()[-4000:]}")
    build_seconds = time.perf_counter() - started
    size = dockerd.client.images.get(IMAGE).attrs["Size"]
    figures.append(f"wheels gathered: {wheel_seconds:.0f} s; image built: {build_seconds:.0f} s, "
                   f"{size / 2**30:.1f} GiB")  # fmt: skip
    return IMAGE


def _in_container(dockerd: Dockerd, *command: str, user: str | None = None) -> str:
    output = dockerd.client.containers.run(IMAGE, list(command), remove=True, network_mode="none", user=user)
    return output.decode()


def test_the_worker_image_builds_on_a_debian_base_runs_tint_as_its_user_and_holds_no_credentials(dockerd, worker_image):
    image = dockerd.client.images.get(worker_image)
    assert image.attrs["Config"]["User"] == "10001"
    assert _in_container(dockerd, "id", "-u").strip() == "10001"
    usage = _in_container(dockerd, "tint", "--help")
    assert all(command in usage for command in ("benchmark", "distill", "export", "store"))
    # The project and nothing else from the checkout: .dockerignore keeps the context to the package.
    assert sorted(_in_container(dockerd, "ls", "/opt/tint").split()) == sorted(
        ["README.md", "deployments", "flows", "pyproject.toml", "tasks", "tint_core"])  # fmt: skip
    # No credential in its environment, in its build history (build arguments are recorded there), or on its disk.
    environment = dict(entry.split("=", 1) for entry in image.attrs["Config"]["Env"])
    assert not [name for name in environment if CREDENTIAL.search(name)], environment
    history = [layer["CreatedBy"] for layer in image.history()]
    assert not [line for line in history if CREDENTIAL.search(line)], history
    found = _in_container(dockerd, "find", "/", "-xdev", "(", "-name", ".aws", "-o", "-name", ".netrc", "-o",
                          "-name", ".git-credentials", "-o", "-name", ".pypirc", "-o", "-name", "pip.conf", "-o",
                          "-path", "*/.docker/config.json", ")", "-print", user="0")  # root: every folder  # fmt: skip
    assert found.strip() == ""


def _compose_command() -> list[str]:
    """Compose v2 (the docker CLI's plugin) where it is installed, else docker-compose (Debian 12 has 1.29)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 check=False).returncode == 0:  # fmt: skip
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("the compose test needs Docker Compose (Debian: apt-get install docker-compose)")


@pytest.fixture(scope="module")
def postgres_image(dockerd, debian_base) -> str:
    """The official postgres image's stand-in (tests/deployments/postgres_image): Debian's PostgreSQL on the base."""
    started = time.perf_counter()
    try:
        dockerd.client.images.build(path=str(Path(__file__).parent / "postgres_image"), tag=POSTGRES_IMAGE,
                                    buildargs={"BASE_IMAGE": debian_base}, network_mode="host", rm=True,
                                    forcerm=True)  # fmt: skip
    except docker.errors.BuildError as error:
        pytest.fail(f"the PostgreSQL stand-in did not build: {error}\n{''.join(map(str, error.build_log))[-3000:]}")
    seconds = time.perf_counter() - started
    figures.append(f"PostgreSQL stand-in image (Debian's packages over the base): {seconds:.0f} s")
    return POSTGRES_IMAGE


@dataclass
class ComposeCluster:
    """docker/compose.yaml, started: what a test needs to reach it."""

    api_url: str
    env: dict[str, str]  # the store's settings, as the workers have them
    store: str
    compose: list[str]  # the compose command with its project, files and environment file

    def services(self, dockerd: Dockerd) -> dict[str, list]:
        """Service name → its containers (compose labels them), stopped ones included."""
        found: dict[str, list] = {}
        project = self.compose[self.compose.index("-p") + 1]
        for container in dockerd.client.containers.list(all=True, filters={"label": f"com.docker.compose.project="
                                                                                    f"{project}"}):  # fmt: skip
            found.setdefault(container.labels["com.docker.compose.service"], []).append(container)
        return found


@pytest.fixture(scope="module")
def compose_cluster(s3_env, dockerd, worker_image, postgres_image, tmp_path_factory) -> Iterator[ComposeCluster]:
    """``docker compose up`` on docker/compose.yaml, as a person on this machine runs it: PostgreSQL (the stand-in) and Prefect's server (the worker image has it) on loopback ports, the setup service
    making the pools and deployments, the CPU worker and the docker worker on this test's dockerd. The store: moto on
    127.0.0.1 in MinIO's place (no MinIO image or binary comes from the registries this machine reaches), so the
    `minio` profile stays off."""
    compose = _compose_command()
    folder = tmp_path_factory.mktemp("compose")
    bucket = f"tint-compose-{secrets.token_hex(4)}"
    make_bucket(bucket)
    prefect_port, postgres_port = free_ports(2)
    socket_path = dockerd.host.removeprefix("unix://")
    settings = {
        "COMPOSE_PROJECT_NAME": f"tint-test-{prefect_port}",
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16), "POSTGRES_IMAGE": postgres_image,
        "POSTGRES_PORT": postgres_port,
        "PREFECT_IMAGE": worker_image, "PREFECT_PORT": prefect_port, "TINT_WORKER_IMAGE": worker_image,
        "TINT_STORE": f"s3://{bucket}/tint", "GPUS": 2,
        "DOCKER_SOCKET": socket_path, "DOCKER_GID": os.stat(socket_path).st_gid,
        **{name: s3_env[name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                           "AWS_ENDPOINT_URL")},
    }  # fmt: skip
    env_file = folder / ".env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    command = [*compose, "-p", settings["COMPOSE_PROJECT_NAME"], "-f", str(REPO / "docker" / "compose.yaml"),
               "--env-file", str(env_file)]  # fmt: skip
    host_env = {**os.environ, "DOCKER_HOST": dockerd.host}
    cluster = ComposeCluster(api_url=f"http://127.0.0.1:{prefect_port}/api", env=dict(s3_env),
                             store=settings["TINT_STORE"], compose=command)  # fmt: skip
    try:
        started = time.perf_counter()
        # Waits for the database and the server to be healthy and for the setup to finish, as depends_on says.
        up = subprocess.run([*command, "up", "-d", "--no-build"], env=host_env, capture_output=True, text=True,
                            timeout=900, check=False)  # fmt: skip
        logs = subprocess.run([*command, "logs", "--no-color"], env=host_env, capture_output=True, text=True,
                              check=False).stdout  # fmt: skip
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:] + logs[-6000:]
        figures.append(f"compose up (PostgreSQL, server, setup, both workers): {time.perf_counter() - started:.0f} s")
        yield cluster
    finally:
        down = subprocess.run([*command, "down", "-v", "--remove-orphans"], env=host_env, capture_output=True,
                              text=True, timeout=300, check=False)  # fmt: skip
        assert down.returncode == 0, down.stderr[-2000:]


def _docker_pool_template(cluster: ComposeCluster) -> dict:
    """deployments/pools/docker.json with this machine's values, as a user sets them for their hosts: the image built
    here (never pulled), the host's network (no bridge here), no GPU request, no models volume, the store's endpoint
    and credentials, the tests' one torch thread, and containers kept after the run so that the test can look at
    them."""
    template = json.loads((REPO / "deployments" / "pools" / "docker.json").read_text())
    variables = template["variables"]["properties"]
    for name, value in {"image": IMAGE, "image_pull_policy": "Never", "network_mode": "host", "device_requests": [],
                        "volumes": [], "auto_remove": False,
                        "env": {**variables["env"]["default"], **cluster.env,
                                "OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"]}}.items():  # fmt: skip
        variables[name]["default"] = value
    return template


def test_compose_runs_the_benchmark_deployment_with_its_units_in_containers_of_the_image_and_the_main_jobs_digests(
        compose_cluster, dockerd, prefect_server, tmp_path_factory):  # fmt: skip
    services = compose_cluster.services(dockerd)
    assert services["setup"][0].attrs["State"]["ExitCode"] == 0
    assert all(services[name][0].status == "running" for name in ("database", "server", "cpu-worker",
                                                                  "docker-worker"))  # fmt: skip
    assert "store" not in services  # the minio profile is off: moto on loopback in its place
    with api(compose_cluster), get_client(sync_client=True) as client:
        client.update_work_pool("tint-gpu", WorkPoolUpdate(base_job_template=_docker_pool_template(compose_cluster)))
        assert client.read_work_pool("tint-gpu").type == "docker"
    config = small_config(f"{compose_cluster.store}/docker", methods=["supports_only", "tint"],
                          execution=ExecutionConfig(fan_out="deployments"))  # fmt: skip
    with api(compose_cluster):
        first, seconds = trigger(config)
        assert first.state.is_completed(), first.state
        units = unit_runs(first)
    # The reference: the session's undisturbed run of the same benchmark, its units as tasks of the main job in this
    # process (tests/pipeline/helpers.py; computed here, on the session's server, unless a file has already). It
    # computes with one torch thread, as the containers do (tests/conftest.py; compose passes OMP_NUM_THREADS on to
    # its workers, the pool's template above to the units): digests depend on the thread count.
    reference = undisturbed_run(tmp_path_factory)
    assert reference.config == config.updated(store=reference.config.store, execution=reference.config.execution)
    # The benchmark ran on the compose file's CPU worker; one unit per episode, each in its own container of the
    # image, started by the compose file's docker worker and labelled with its flow run.
    assert first.work_pool_name == "tint-cpu"
    assert len(units) == 2 and all(run.state.is_completed() for run in units)
    assert {run.labels["prefect.worker.name"] for run in units} == {"docker-worker"}
    for run in units:
        container = dockerd.client.containers.get(run.infrastructure_pid.rsplit(":", 1)[1])
        assert container.image.tags == [IMAGE] and container.attrs["State"]["ExitCode"] == 0
        assert container.labels["io.prefect.flow-run-id"] == str(run.id)
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    assert content_digests(config.store) == reference.digests
    keys = [manifest.key for manifest in ArtifactStore(config.store).list()]
    assert ArtifactStore(config.store).verify(keys).valid == keys
    # (That a second trigger dispatches nothing is the benchmark flow's own check of the store, whatever the pool:
    # tried on the process pool, tests/deployments/test_work_pools.py.)
    figures.append(f"benchmark deployment through compose, 2 units in containers on the docker pool: {seconds:.0f} s")
