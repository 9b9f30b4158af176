"""Bad input fails before any work with one line naming the problem, and nothing is written to the store."""

import pytest
from typer.testing import CliRunner

from flows import benchmark as main_job
from flows.cli import app
from tests.pipeline.helpers import small_config
from tint_core.diffusion import BackboneNotFoundError
from tint_core.pipeline.checks import check_benchmark
from tint_core.store import StoreAccessError


def _generator_on(config, source: str):
    backbone = config.generator.specialization.backbone.updated(source=source)
    return config.generator.updated(specialization=config.generator.specialization.updated(backbone=backbone))


CASES = {
    "missing dataset": (lambda c, tmp: c.updated(dataset=c.dataset.updated(source=str(tmp / "no-such-dataset"))),
                        FileNotFoundError, "dataset folder .*no-such-dataset does not exist"),
    "too few classes": (lambda c, tmp: c.updated(episodes=c.episodes.updated(n_way=6)),
                        ValueError, "N=6 ways requested but split 'novel' has only 5 classes"),
    "too few images": (lambda c, tmp: c.updated(episodes=c.episodes.updated(k_shot=100, n_query=80)),
                       ValueError, r"split 'novel': K\+Q = 180 images per class needed but class '7' has 179, '8' has 174"),
    "no spare images for real_pool": (lambda c, tmp: c.updated(episodes=c.episodes.updated(n_query=173)),
                                      ValueError, "'real_pool' and the image-set quality need .* '8' has fewer: drop "
                                      "real_pool from methods and set evaluation.quality_k to 0"),
    "too few spare images for the quality": (
        lambda c, tmp: c.updated(methods=["supports_only", "tint"], episodes=c.episodes.updated(n_query=171)),
        ValueError, r"^the image-set quality needs spare images beyond K\+Q = 172 .*\(at least 4\), but '8' has "
        "fewer: set evaluation.quality_k to 0$"),
    "image sets too small for the quality": (
        lambda c, tmp: c.updated(generator=c.generator.updated(generation=c.generator.generation.updated(
            images_per_class=3))),
        ValueError, "images_per_class = 3 is too few images per class for the image-set quality's k = 3"),
    "a base pool larger than the base split": (
        lambda c, tmp: c.updated(methods=["supports_only", "base_pool"], controls=c.controls.updated(
            base_pool=c.controls.base_pool.updated(images_per_class=400))),
        ValueError, "'base_pool' draws 1200 base images per episode, but the base split has 901"),
    "backbone not available offline": (lambda c, tmp: c.updated(generator=_generator_on(c, "someone/missing-model")),
                                       BackboneNotFoundError, "not in the local Hugging Face cache.*never downloads"),
    "missing student weights": (
        lambda c, tmp: c.updated(student=c.student.updated(
            pretrain=None, model=c.student.model.updated(backbone=c.student.model.backbone.updated(
                weights=str(tmp / "student.safetensors"))))),
        FileNotFoundError, "student: weights file .*student.safetensors does not exist"),
    "unknown teacher architecture": (
        lambda c, tmp: c.updated(teacher=c.teacher.updated(model=c.teacher.model.updated(
            backbone=c.teacher.model.backbone.updated(name="resnet12_tinyy")))),
        ValueError, "teacher: unknown timm model 'resnet12_tinyy'; close matches"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_before_any_work_and_writes_nothing(case, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    change, error, message = CASES[case]
    # On every digit image (the smoke preset writes 20 of each): the messages name the whole set's counts.
    whole = small_config(str(tmp_path / "store"))
    config = change(whole.updated(dataset=whole.dataset.updated(digits_per_class=None)), tmp_path)
    with pytest.raises(error, match=message) as caught:
        check_benchmark(config)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "store").exists()


def test_an_unreachable_store_is_named(tmp_path, monkeypatch, s3_env):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(StoreAccessError, match="cannot reach store s3://tint-nowhere/store") as caught:
        check_benchmark(small_config("s3://tint-nowhere/store"))
    assert "\n" not in str(caught.value)


def test_an_unwritable_store_is_named(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the store's parent folder should be")
    with pytest.raises(StoreAccessError, match="a-file/store"):
        check_benchmark(small_config(str(blocker / "store")))


def test_a_missing_bucket_is_named(s3_env):
    with pytest.raises(StoreAccessError, match="the bucket of store s3://tint-no-such-bucket/store does not exist"):
        check_benchmark(small_config("s3://tint-no-such-bucket/store"))


YAML_CASES = {
    "not yaml": ("episodes: {n_way: 3\n", "not valid YAML at line"),
    "unknown field": ("episodes:\n  n_wya: 3\n", "unknown field 'episodes.n_wya'"),
    "out of range": ("episodes:\n  n_way: 1\n", "field 'episodes.n_way': Input should be greater than or equal to 2"),
    "unknown method": ("methods: [tint, magic]\n", "field 'methods.1': unknown method 'magic'"),
}


@pytest.mark.parametrize("case", list(YAML_CASES))
def test_the_main_job_reports_a_bad_configuration_file_in_one_line(case, tmp_path):
    text, message = YAML_CASES[case]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["benchmark", str(path)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {path}: ") and message in result.stderr
    assert result.stdout == ""


def test_the_flow_itself_refuses_bad_input_before_any_task(tmp_path, prefect_server):
    config = small_config(str(tmp_path / "store")).updated(dataset={"source": str(tmp_path / "gone")})
    state = main_job.benchmark(config=config, return_state=True)
    assert state.is_failed()
    with pytest.raises(FileNotFoundError, match="dataset folder .*gone does not exist"):
        state.result()
    assert not (tmp_path / "store").exists()
