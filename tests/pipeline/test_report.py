"""Run records and reports, and the command line over the flows: `tint benchmark`, `demo`, `distill`, `plan`,
`report`, through typer's runner (in process, on the session's Prefect server) and as a subprocess."""

import base64
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app
from tests.browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, require_chromium
from tests.pipeline.helpers import app_config, small_config, timings
from tint_core.evaluation import plan_evaluation
from tint_core.pipeline.results import BenchmarkSummary, points_text, summary_rows
from tint_core.pipeline.runs import RunNotFoundError, find_run, list_runs
from tint_core.store import ArtifactStore

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]
REPO = Path(__file__).parents[2]
runner = CliRunner()
IMAGE = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _section(page: str, table_id: str) -> str:
    found = re.search(rf'<table id="{table_id}">.*?</table>', page, re.S)
    assert found, f"no table {table_id} in the report"
    return found.group(0)


@pytest.fixture(scope="module")
def pilot(tmp_path_factory):
    """`tint benchmark` on the small configuration, one field changed with --set: the run, its record, its report."""
    root = tmp_path_factory.mktemp("report")
    small_config(str(root / "store")).to_yaml(root / "config.yaml")
    result = runner.invoke(app, ["benchmark", str(root / "config.yaml"), "--set", "evaluation.target_half_width=0.05"])
    assert result.exit_code == 0, result.output
    record = find_run(str(root / "store"))
    return root, result, record


def test_the_benchmark_command_records_the_run_with_its_overrides_and_a_report(pilot):
    root, result, record = pilot
    assert record.config.evaluation.target_half_width == 0.05  # the --set reached the flow
    assert re.search(r"44 task runs recorded by Prefect \(0 cached\)", result.stdout)
    location = re.search(r"report: (\S+\.html)", result.stdout).group(1)
    assert Path(location) == root / "store" / "logs" / "reports" / f"{record.run_id}.html"
    assert [len(unit.specializations) for unit in record.units] == [3, 3]  # 2 episodes, one 3-way unit each
    assert all(set(unit.images) == {"ti_only", "tint"} for unit in record.units)
    assert set(record.students["0"]) == {"supports_only", "ti_only", "tint", "real_pool"}


def test_each_specialisation_keeps_its_reconstructions_and_its_compute_time(pilot):
    _, _, record = pilot
    store = ArtifactStore(record.config.store)
    for ref in record.units[0].specializations:
        artifact = store.get(ref)
        reconstructions = artifact["reconstructions"]
        assert len(reconstructions) == 1  # 1-shot: one support, one reconstruction
        assert reconstructions.metadata.column("psnr").to_pylist() == artifact["inversion"]["psnr"].tolist()
        assert reconstructions.tensor(0).shape[0] == 3
        assert artifact.manifest.seconds > 0


def test_the_html_report_holds_the_results_table_and_valid_pictures(pilot):
    _, _, record = pilot
    page = Path(record.config.store, "logs", "reports", f"{record.run_id}.html").read_text()
    store = ArtifactStore(record.config.store)
    summary = BenchmarkSummary.model_validate(store.get(record.results)["summary"])
    results = _section(page, "results")
    for row in summary_rows(summary):
        for value in row.values():
            assert f"<td>{value}</td>" in results
    psnr = _section(page, "psnr")
    for ref in record.units[0].specializations:
        values = store.get(ref)["reconstructions"].metadata.column("psnr").to_pylist()
        assert " ".join(f"{value:.1f}" for value in values) in psnr
    # What you get: each method's accuracy beside the size and speed of the student and the teacher, measured.
    from tint_core.export.card import count_text
    from tint_core.export.measure import count_parameters
    from tint_core.pipeline.classify import load_distilled

    got = _section(page, "what-you-get")
    student = load_distilled(store, record.students["0"]["tint"])
    for method, result in summary.ordered():
        points = 100 * (result.accuracy.mean - summary.teacher.mean)
        assert re.search(rf"<td>student: {method}</td><td>{re.escape(points_text(result.accuracy))}</td>"
                         rf"<td>{re.escape(count_text(count_parameters(student)))}</td>.*?<td>{points:+.1f}</td></tr>",
                         got)  # fmt: skip
    assert f"<td>teacher</td><td>{points_text(summary.teacher)}</td>" in got
    stages = _section(page, "stages")
    assert "<td>specialize</td><td>6</td><td>6</td>" in stages  # 2 episodes × 3 classes, all made by this run
    pictures = [Image.open(io.BytesIO(base64.b64decode(data))) for data in IMAGE.findall(page)]
    for picture in pictures:
        picture.verify()
    assert [picture.format for picture in pictures] == ["PNG"] * len(pictures)
    # a strip per class of episode 0, the precision-recall scatter, the training curves, the time per stage, the
    # history
    assert len(pictures) == 3 + 1 + 1 + 1 + 1
    assert "Image-set quality" in page and f"same {record.config.student.training.steps} steps" in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # opens offline


def test_the_report_opens_in_a_browser(pilot):
    playwright = require_chromium("opening the report")
    _, _, record = pilot
    page_file = Path(record.config.store, "logs", "reports", f"{record.run_id}.html")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            widths = page.evaluate("Array.from(document.images).map(image => image.complete ? image.naturalWidth : 0)")
            alts = page.evaluate("Array.from(document.images).map(image => image.alt)")
            header = page.locator("#results th").all_inner_texts()
            got = page.locator("#what-you-get tbody tr").all_inner_texts()
            got_header = page.locator("#what-you-get th").all_inner_texts()
            page.screenshot(path=str(ARTIFACTS / "run-report.png"), full_page=True)
        finally:
            browser.close()
    # Every figure the page embeds decodes: the class strips, precision/recall, curves, stage times, history.
    assert len(widths) == page_file.read_text().count("<img ") and all(width > 100 for width in widths)
    assert {"precision against recall per method", "training curves", "compute seconds per stage"} <= set(alts)
    assert header[:2] == ["model", "accuracy (%)"]
    assert got_header[:3] == ["model", "accuracy (%)", "parameters"] and "× faster" in got_header
    assert [row.split("\t")[0] for row in got] == ["teacher"] + [f"student: {m}" for m in record.config.methods]
    assert all(url.startswith(("file://", "data:")) for url in requested)
    timings.append(f"run report in chromium: screenshot {ARTIFACTS / 'run-report.png'}")


def test_tint_report_renders_the_run_again_and_never_overwrites_unasked(pilot, tmp_path):
    root, _, record = pilot
    stored = Path(record.config.store, "logs", "reports", f"{record.run_id}.html").read_text()
    output = tmp_path / "again.html"
    result = runner.invoke(app, ["report", record.config.store, record.run_id[:8], "--output", str(output)])
    assert result.exit_code == 0, result.output
    rendered = output.read_text()
    for table in ("results", "variance", "psnr", "stages", "units"):
        assert _section(rendered, table) == _section(stored, table)
    again = runner.invoke(app, ["report", record.config.store, "latest", "--output", str(output)])
    assert again.exit_code == 1 and "already exists" in again.stderr and output.read_text() == rendered
    assert runner.invoke(app, ["report", record.config.store, "--output", str(output), "--overwrite"]).exit_code == 0


@pytest.mark.parametrize(("arguments", "message"), [
    (["report", "{missing}"], "store {missing} does not exist"),
    (["report", "{store}", "no-such-run"], "no run 'no-such-run' in store"),
    (["plan", "{missing}"], "store {missing} does not exist"),
    (["plan", "{store}", "latest", "--half-width", "0"], "Invalid value for '--half-width'"),
])  # fmt: skip
def test_report_and_plan_refuse_bad_arguments_and_write_nothing(pilot, tmp_path, arguments, message):
    _, _, record = pilot
    names = {"missing": str(tmp_path / "missing"), "store": record.config.store}
    result = runner.invoke(app, [argument.format(**names) for argument in arguments])
    assert result.exit_code in (1, 2) and message.format(**names) in result.stderr
    assert list(tmp_path.iterdir()) == [] and list(Path.cwd().glob("tint-report-*.html")) == []


def test_tint_plan_gives_the_planners_episodes_and_queries_for_the_asked_interval(pilot):
    _, _, record = pilot
    store = ArtifactStore(record.config.store)
    summary = BenchmarkSummary.model_validate(store.get(record.results)["summary"])
    max_query = store.inspect(record.results.key).params["max_query"]
    result = runner.invoke(app, ["plan", record.config.store, "--half-width", "0.1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "±10 points at 95%" in result.stdout
    variance = summary.methods["supports_only"].variance
    plan = plan_evaluation(variance.mean, variance.between_episode_variance, 3, 0.1, record.config.evaluation.cost,
                           max_query)  # fmt: skip
    row = next(line for line in result.stdout.splitlines() if "supports_only" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[3:5] == [str(plan.n_episodes), str(plan.n_query)]


def test_a_rerun_is_recorded_too_and_its_report_shows_the_history(pilot):
    root, _, first = pilot
    result = runner.invoke(app, ["benchmark", str(root / "config.yaml"), "--set", "evaluation.target_half_width=0.05"])
    assert result.exit_code == 0, result.output
    assert re.search(r"44 task runs recorded by Prefect \(44 cached\)", result.stdout)
    runs = list_runs(first.config.store)
    assert [run.run_id for run in runs][0] == first.run_id and len(runs) == 2
    second = runs[1]
    assert second.results == first.results and second.units == first.units  # the same artifacts, reused
    page = Path(first.config.store, "logs", "reports", f"{second.run_id}.html").read_text()
    assert "Every run (2) of this configuration" in page
    assert "<td>specialize</td><td>6</td><td>0</td>" in _section(page, "stages")  # none made by the rerun
    with pytest.raises(RunNotFoundError, match="matches 2 runs"):
        find_run(first.config.store, "")


def test_the_benchmark_command_refuses_a_bad_override_before_any_work(tmp_path):
    small_config(str(tmp_path / "store")).to_yaml(tmp_path / "config.yaml")
    result = runner.invoke(app, ["benchmark", str(tmp_path / "config.yaml"), "--set", "episodes.n_wya=3"])
    assert result.exit_code == 1 and result.stderr.startswith("error: --set episodes.n_wya=3: unknown field")
    assert not (tmp_path / "store").exists()


def test_the_demo_command_runs_the_embedded_defaults_with_overrides(tmp_path):
    tiny = ["episodes.episodes=2", "episodes.n_way=3", "episodes.n_query=4", "methods=[supports_only,tint]",
            "generator.specialization.backbone.source=tiny", "generator.specialization.textual_inversion.steps=2",
            "generator.specialization.null_text.num_steps=2", "generator.generation.images_per_class=4",
            "teacher.pretrain.epochs=1", "student.pretrain.epochs=1", "student.training.steps=2"]  # fmt: skip
    arguments = ["demo", "--store", str(tmp_path / "store")] + [part for value in tiny for part in ("--set", value)]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    record = find_run(str(tmp_path / "store"))
    assert record.config.generator.specialization.backbone.source == "tiny"
    assert record.config.episodes.n_way == 3 and "student: tint" in result.stdout


def test_the_distill_command_turns_a_support_folder_into_a_student(tmp_path, support_folder):
    config = app_config(tmp_path, support_folder)
    config.to_yaml(tmp_path / "app.yaml")
    output = tmp_path / "my-student"
    result = runner.invoke(app, ["distill", str(support_folder), str(output), "--config", str(tmp_path / "app.yaml")])
    assert result.exit_code == 0, result.output
    assert (output / "student.safetensors").is_file() and f"student: {output / 'student.safetensors'}" in result.stdout
    before = (output / "student.safetensors").read_bytes()
    again = runner.invoke(app, ["distill", str(support_folder), str(output), "--config", str(tmp_path / "app.yaml")])
    assert again.exit_code == 1 and "already holds a student" in again.stderr
    assert (output / "student.safetensors").read_bytes() == before


def test_the_distill_command_refuses_a_missing_support_folder_and_writes_nothing(tmp_path, support_folder):
    config = app_config(tmp_path, support_folder)
    config.to_yaml(tmp_path / "app.yaml")
    result = runner.invoke(app, ["distill", str(tmp_path / "nowhere"), str(tmp_path / "out"), "--config",
                                 str(tmp_path / "app.yaml")])  # fmt: skip
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and "nowhere" in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "store").exists()


def test_the_installed_command_works_as_a_subprocess(pilot, tmp_path):
    _, _, record = pilot
    env = {**os.environ, "COLUMNS": "120"}
    tint = [sys.executable, "-m", "flows.cli"]
    helped = subprocess.run([*tint, "--help"], capture_output=True, text=True, env=env, cwd=REPO, check=False)
    assert helped.returncode == 0
    for command in ("benchmark", "demo", "distill", "plan", "report", "export", "specialize", "generate", "store"):
        assert re.search(rf"│ {command}\s", helped.stdout), command
    output = tmp_path / "report.html"
    done = subprocess.run([*tint, "report", record.config.store, "--output", str(output)], capture_output=True,
                          text=True, env=env, cwd=REPO, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _section(output.read_text(), "results").startswith('<table id="results">')
    usage = subprocess.run([*tint, "plan"], capture_output=True, text=True, env=env, cwd=REPO, check=False)
    assert usage.returncode == 2 and "Missing argument" in usage.stderr


def _export_args(output: Path, *arguments: str) -> list[str]:
    return ["export", *arguments, "--output", str(output), "--repeats", "2"]


def test_tint_export_writes_a_checked_onnx_student_and_a_card_read_from_the_run(pilot, tmp_path):
    from tint_core.export.card import ModelCard, headline
    from tint_core.export.onnx import OnnxClassifier, read_metadata
    from tint_core.pipeline.classify import load_distilled
    from tint_core.pipeline.data import load_episode

    _, _, record = pilot
    output = tmp_path / "shipped"
    result = runner.invoke(app, _export_args(output, record.config.store, record.run_id, "--method", "tint", "--episode", "1",
                                             "--quantize", "--max-drop", "100"))  # fmt: skip
    assert result.exit_code == 0, result.output
    store = ArtifactStore(record.config.store)
    summary = BenchmarkSummary.model_validate(store.get(record.results)["summary"])
    card = ModelCard.model_validate_json((output / "card.json").read_text())
    assert headline(card) in result.stdout and "→ kept" in result.stdout
    assert card.accuracy.student == summary.methods["tint"].accuracy and card.accuracy.teacher == summary.teacher
    assert card.lineage["run_id"] == record.run_id and card.lineage["episode"] == "1"
    assert card.lineage["artifacts"]["student"] == record.students["1"]["tint"].key
    assert card.lineage["configuration"] == record.config.model_dump(mode="json")
    # Checked on the episode's queries: the ONNX student predicts what the stored student predicts.
    queries, labels = load_episode(store, record.episodes["1"]).queries()
    exported = OnnxClassifier(output / "student.onnx")
    assert card.check.images == len(labels) == summary.n_way * summary.n_query
    torch_logits = load_distilled(store, record.students["1"]["tint"]).predict(queries)
    assert (exported(queries) - torch_logits).abs().max() <= 1e-4
    assert card.accuracy.student_on_images == float((torch_logits.argmax(1) == labels).float().mean())
    assert read_metadata(output / "student.onnx")["classes"] == load_episode(store, record.episodes["1"]).class_names
    assert card.int8.result.kept and (output / "student.int8.onnx").is_file()


@pytest.mark.parametrize(("arguments", "message"), [
    (["{missing}"], "error: store {missing} does not exist"),
    (["{store}", "no-such-run"], "error: no run 'no-such-run' in store {store}; the latest are: "),
    (["{store}", "--method", "nope"], "has no method 'nope'; it has supports_only, ti_only, tint, real_pool"),
    (["{store}", "--episode", "7"], "has no episode '7'; it has episodes 0, 1"),
    (["{store}", "--max-drop", "-1"], "Invalid value for '--max-drop'"),
])  # fmt: skip
def test_tint_export_refuses_bad_arguments_in_one_line_and_writes_nothing(pilot, tmp_path, arguments, message):
    _, _, record = pilot
    names = {"missing": str(tmp_path / "missing"), "store": record.config.store}
    output = tmp_path / "out"
    result = runner.invoke(app, _export_args(output, *[argument.format(**names) for argument in arguments]))
    assert result.exit_code in (1, 2) and message.format(**names) in result.stderr
    if result.exit_code == 1:
        assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_tint_export_keeps_an_existing_export_unless_overwrite(pilot, tmp_path):
    _, _, record = pilot
    output = tmp_path / "out"
    output.mkdir()
    (output / "student.onnx").write_bytes(b"mine")
    result = runner.invoke(app, _export_args(output, record.config.store))
    assert result.exit_code == 1 and result.stderr.strip() == (
        f"error: {output} already holds student.onnx: choose another folder or pass --overwrite")
    assert (output / "student.onnx").read_bytes() == b"mine" and len(list(tmp_path.iterdir())) == 1
    assert runner.invoke(app, [*_export_args(output, record.config.store), "--overwrite"]).exit_code == 0
    assert (output / "student.onnx").read_bytes().startswith(b"\x08")  # a protobuf now, not the bytes above


def test_the_card_follows_the_run_it_is_exported_from(pilot, tmp_path):
    """The same benchmark with another student (narrower, trained longer): its card changes with it."""
    from tint_core.export.card import ModelCard

    root, _, first = pilot
    store = tmp_path / "store"
    steps = first.config.student.training.steps + 2
    changed = runner.invoke(app, ["benchmark", str(root / "config.yaml"), "--set", f"store={store}",
                                  "--set", f"student.training.steps={steps}",
                                  "--set", "student.model.backbone.model_kwargs={img_size: 16, widths: [4, 8, 16, 32]}"])  # fmt: skip
    assert changed.exit_code == 0, changed.output
    second = find_run(str(store))
    cards = {}
    for name, record in (("first", first), ("second", second)):
        result = runner.invoke(app, _export_args(tmp_path / name, record.config.store, record.run_id, "--method",
                                                 "tint"))  # fmt: skip
        assert result.exit_code == 0, result.output
        cards[name] = ModelCard.model_validate_json((tmp_path / name / "card.json").read_text())
    summary = BenchmarkSummary.model_validate(ArtifactStore(str(store)).get(second.results)["summary"])
    assert cards["second"].accuracy.student == summary.methods["tint"].accuracy
    assert cards["second"].lineage["run_id"] == second.run_id != cards["first"].lineage["run_id"]
    assert cards["second"].lineage["configuration"]["student"]["training"]["steps"] == steps
    assert cards["second"].student.parameters < cards["first"].student.parameters  # widths 4-8-16-32, not 8-…-64
    assert cards["second"].teacher.parameters == cards["first"].teacher.parameters


def test_a_report_renders_where_the_teacher_cannot_be_loaded_and_says_why(pilot, tmp_path):
    from tint_core.report import collect_report, to_html

    _, _, record = pilot
    teacher = record.config.teacher.model
    moved = teacher.updated(backbone=teacher.backbone.updated(weights=str(tmp_path / "elsewhere.safetensors")))
    elsewhere = record.model_copy(update={"config": record.config.updated(
        teacher=record.config.teacher.updated(model=moved)), "backbones": {}})  # fmt: skip
    page = to_html(collect_report(elsewhere, with_history=False))
    assert "could not be measured where this report was rendered: weights file" in page
    assert 'id="what-you-get"' not in page and _section(page, "results")
