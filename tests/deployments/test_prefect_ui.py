"""A person at the Prefect UI: the benchmark deployment's run form (the short run section, overrides, a value the
form refuses) and the run's page with its pictures, in Debian's chromium; and runs whose parameters break the schema,
refused through the API. On a cluster of their own (tests/deployments/conftest.py), so that this file and
test_work_pools.py run side by side."""

import time
from collections.abc import Iterator

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentFlowRunCreate, DeploymentUpdate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterName,
)
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import PrefectHTTPStatusError
from prefect.states import Scheduled, to_state_create

from tests.browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, require_chromium
from tests.conftest import read_bucket
from tests.deployments.conftest import Cluster, running_cluster
from tests.deployments.test_work_pools import api
from tests.pipeline.helpers import timings
from tint_core.pipeline.presets import smoke_config
from tint_core.pipeline.runs import find_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(s3_env, database, tmp_path_factory) -> Iterator[Cluster]:
    """The cluster with its CPU worker only: the runs made here compute their units as tasks of the benchmark."""
    with running_cluster(database, tmp_path_factory) as started:
        started.start_worker("tint-cpu", "cpu-a")
        yield started


def _field(page, label: str):
    """A field of the form by its label: the innermost group holding it."""
    return page.locator("div.group").filter(has=page.get_by_text(f"{label} (Optional)", exact=True)).last


def _fill_the_form(page, base: str, deployment_id: object, run_name: str, choices: dict[str, str],
                   overrides: list[str]) -> dict[str, int]:  # fmt: skip
    """As a person does: Deployments → search → the deployment → Run → Custom run; set some of the run's choices
    (switching each from the preset's "None" to a number) and add overrides. Returns the form's height in pixels and
    how many fields it shows before the advanced "config"."""
    page.goto(base + "/")
    page.get_by_role("link", name="Deployments", exact=True).click()
    other = page.get_by_role("link", name="tint-distill", exact=True)
    other.wait_for()  # the list has loaded…
    page.get_by_placeholder("Search deployments").fill("tint-benchmark")
    other.wait_for(state="detached")  # …the search has applied…
    # …and the list has settled: it renders again as the search's other answers (counts, pages) arrive, and a click
    # on a row about to be replaced goes nowhere. Waiting for the app's requests to end is waiting for the last render.
    page.wait_for_load_state("networkidle")
    page.get_by_role("link", name="tint-benchmark", exact=True).first.click()
    page.wait_for_url(f"**/deployments/deployment/{deployment_id}**")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Custom run").click()
    _field(page, "Episodes").wait_for()
    # The run's choices show with their help; the preset's value stands until a person switches a field on.
    assert page.get_by_text("smoke: tiny random-weight models, seconds, to check a cluster.").first.is_visible()
    measured = page.evaluate("""() => {
        const labels = Array.from(document.querySelectorAll('label')).map(label => label.textContent.trim());
        return {height: document.documentElement.scrollHeight,
                fields: labels.slice(0, labels.indexOf('config (Optional)'))
                    .filter(l => l.endsWith('(Optional)') && l !== 'run (Optional)').length};
    }""")
    for label, value in choices.items():
        field = _field(page, label)
        field.get_by_text("int", exact=True).click()
        field.locator("input").fill(value)
    for value in overrides:
        field = _field(page, "Advanced: field overrides")
        field.get_by_role("button", name="Add item").click()
        field.locator("textarea").last.fill(value)
    page.get_by_label("Run Name", exact=False).first.fill(run_name)
    return measured


def _submit_from_the_form(page, base: str, deployment_id: object, run_name: str, choices: dict[str, str],
                          overrides: list[str]) -> dict[str, int]:  # fmt: skip
    """Fill the form and submit it; returns the form's measurements."""
    measured = _fill_the_form(page, base, deployment_id, run_name, choices, overrides)
    page.screenshot(path=str(ARTIFACTS / f"ui-run-form-{'advanced' if overrides else 'short'}.png"), full_page=True)
    with page.expect_response(lambda response: response.url.endswith("/create_flow_run")) as created:
        page.get_by_role("button", name="Submit").click()
    if not created.value.ok:  # say so now rather than wait for a confirmation that will not come
        raise RuntimeError(f"the server refused the run: {created.value.status} {created.value.status_text}")
    page.get_by_text("View run").first.wait_for()
    return measured


def _refused_by_the_form(context, base: str, deployment_id: object, label: str, value: str) -> str:
    """Type a bad value into one field of the form and submit; return what the browser says at that field. Raises if
    the form sent a run to the server all the same."""
    page = context.new_page()
    page.set_default_timeout(60_000)
    created: list[str] = []
    page.on("request", lambda request: created.append(request.url) if request.url.endswith("/create_flow_run") else None)
    try:
        _fill_the_form(page, base, deployment_id, "ui-refused", {label: value}, [])
        page.get_by_role("button", name="Submit").click()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(ARTIFACTS / "ui-run-form-refused.png"), full_page=True)
        assert not created, f"the form submitted a run with {label} = {value!r}"
        # The form renders the schema's bounds into the input, so the browser itself holds the submission back.
        return _field(page, label).locator("input").evaluate("input => input.validationMessage")
    finally:
        page.close()


def _wait_for_run(cluster: Cluster, name: str, timeout: float = 900.0) -> FlowRun:
    deadline = time.monotonic() + timeout
    with api(cluster), get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
            if runs and runs[0].state and runs[0].state.is_final():
                return runs[0]
            time.sleep(2)
    raise TimeoutError(f"run {name!r} not final within {timeout:.0f} s")


def _run_from_the_form(context, cluster: Cluster, deployment_id: object, name: str, choices: dict[str, str],
                       overrides: list[str]) -> tuple[FlowRun, dict, list[tuple[str, int]]]:  # fmt: skip
    """Submit the form once, wait for the run, look at it and its pictures. Returns the run, the form's measurements
    and the pictures; a failure is raised with what the browser showed (a screenshot) and the requests that failed."""
    base = cluster.api_url.removesuffix("/api")
    page = context.new_page()
    page.set_default_timeout(60_000)
    failed_requests: list[str] = []  # API answers the UI got wrong, for the report
    page.on("response", lambda response: failed_requests.append(
        f"{response.status} {response.url}") if response.status >= 400 else None)  # fmt: skip
    try:
        measured = _submit_from_the_form(page, base, deployment_id, name, choices, overrides)
        run = _wait_for_run(cluster, name)
        page.goto(f"{base}/runs/flow-run/{run.id}")
        page.get_by_text(name).first.wait_for()
        page.get_by_text("Completed").first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "ui-finished-run.png"), full_page=True)
        return run, measured, _show_the_pictures(cluster, page, base, run)
    except Exception as error:
        page.screenshot(path=str(ARTIFACTS / f"ui-failure-{name}.png"), full_page=True)
        raise AssertionError(f"a person could not run the benchmark from the form ({name}): "
                             f"{str(error).splitlines()[0]}; failed requests: {failed_requests[:5]}") from error
    finally:
        page.close()


@pytest.mark.timeout(1200)
def test_a_person_runs_the_benchmark_from_the_short_form_in_the_prefect_ui(cluster):
    # On a cluster of its own: Prefect 3.9.1's V2 deployment page answered "Not Found" here once the server held the
    # run_deployment subflow runs of test_work_pools.py (see the note on issue 10).
    playwright = require_chromium("the UI test")
    # The operator's defaults for this cluster: the smoke preset (tiny models), units as tasks of one CPU worker.
    store = f"{cluster.store}/ui"
    with api(cluster), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("benchmark/tint-benchmark")
        client.update_deployment(deployment.id, DeploymentUpdate(parameters={"run": {"preset": "smoke", "store": store}}))
    stamp = time.time_ns()
    with playwright.sync_playwright() as browser_driver:
        browser = browser_driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
        blocked: list[str] = []
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1")
                      else (blocked.append(route.request.url), route.abort()))  # fmt: skip
        # 0. A value out of range is refused by the form, under the field, and no run is made.
        refused = _refused_by_the_form(context, cluster.api_url.removesuffix("/api"), deployment.id, "Episodes", "1")
        # 1. The short form: N, K and the episodes set, each unlike the preset's (3, 1, 2) and as small as that allows;
        #    everything else is the preset's.
        choices = {"Classes per episode (N)": "2", "Supports per class (K)": "2", "Episodes": "3"}
        run, form, pictures = _run_from_the_form(context, cluster, deployment.id, f"ui-short-{stamp}", choices, [])
        # 2. The same choices and one advanced value, through the overrides (only the summary is computed again).
        advanced, _, _ = _run_from_the_form(context, cluster, deployment.id, f"ui-advanced-{stamp}", choices,
                                            ["evaluation.target_half_width=0.05"])  # fmt: skip
        browser.close()
    # The form fits in about two screens (900 px each) and asks for the preset and nine choices before "config".
    assert form["height"] < 2.5 * 900 and form["fields"] == 10, form
    assert run.state.is_completed() and advanced.state.is_completed(), (run.state, advanced.state)
    assert run.labels["prefect.worker.name"] == "cpu-a"
    assert {key: run.parameters["run"][key] for key in ("preset", "n_way", "k_shot", "episodes")} == {
        "preset": "smoke", "n_way": 2, "k_shot": 2, "episodes": 3}  # fmt: skip
    smoke = smoke_config(store)
    used = find_run(store, str(run.id)).config  # the configuration the run resolved and recorded
    assert used == smoke.updated(episodes=smoke.episodes.updated(n_way=2, k_shot=2, episodes=3))
    assert advanced.parameters["run"]["overrides"] == ["evaluation.target_half_width=0.05"]
    assert find_run(store, str(advanced.id)).config == used.updated(evaluation=used.evaluation.updated(
        target_half_width=0.05))  # fmt: skip
    assert not [url for url in blocked if url.startswith("http://127.0.0.1")]
    assert "greater than or equal to 2" in refused, refused
    with api(cluster), get_client(sync_client=True) as client:
        assert not client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["ui-refused"])))
    # The first episode's strips show on the run's pictures artifact, as images the browser decoded.
    assert len(pictures) == 2 and all(width > 100 for _, width in pictures), pictures
    timings.append(f"Prefect UI: the short form ({form['height']} px, {form['fields']} fields before 'config'), two "
                   f"runs submitted and completed on a worker; screenshots in {ARTIFACTS}")  # fmt: skip


# One of each kind of bad parameter: a wrong type, a value out of range, a field that does not exist.
BAD_CHOICES = {"episodes": "many", "n_way": 1, "episodez": 3}


def test_runs_with_bad_parameters_are_refused_naming_the_field_and_write_nothing(cluster):
    store = f"{cluster.store}/bad-parameters"
    with api(cluster), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("benchmark/tint-benchmark")
        # 1. Prefect's own validation (the deployment enforces its parameter schema): refused, no run made.
        for field, value in BAD_CHOICES.items():
            with pytest.raises(PrefectHTTPStatusError) as refused:
                client.create_flow_run_from_deployment(deployment.id, parameters={"run": {
                    "preset": "smoke", "store": store, field: value}})  # fmt: skip
            assert refused.value.response.status_code == 409 and field in refused.value.response.text
        # 2. A run that bypasses the schema reaches a worker: the flow's own check fails it, naming every field.
        name = f"bad-parameters-{time.time_ns()}"
        request = DeploymentFlowRunCreate(name=name, enforce_parameter_schema=False, state=to_state_create(Scheduled()),
                                          parameters={"run": {"preset": "smoke", "store": store, **BAD_CHOICES}})  # fmt: skip
        client.request("POST", "/deployments/{id}/create_flow_run", path_params={"id": deployment.id},
                       json=request.model_dump(mode="json", exclude_unset=True))  # fmt: skip
    run = _wait_for_run(cluster, name)
    assert run.state.is_failed(), run.state
    assert all(field in run.state.message for field in BAD_CHOICES), run.state.message
    assert read_bucket(store) == {}  # nothing written


def _show_the_pictures(cluster: Cluster, page, base: str, run: FlowRun) -> list[tuple[str, int]]:
    """Open the run's pictures artifact (the page its Artifacts tab links to); return each image's alt text and
    decoded width, and keep a screenshot."""
    with api(cluster), get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]), key=ArtifactFilterKey(any_=["tint-benchmark-pictures"])))  # fmt: skip
    page.goto(f"{base}/v2/artifacts/artifact/{found[0].id}")
    page.locator("img[alt^='class ']").first.wait_for()
    page.wait_for_function("Array.from(document.images).every(image => image.complete)")
    page.screenshot(path=str(ARTIFACTS / "ui-run-pictures.png"), full_page=True)
    return page.evaluate("Array.from(document.images).filter(image => image.alt.startsWith('class '))"
                         ".map(image => [image.alt, image.naturalWidth])")
