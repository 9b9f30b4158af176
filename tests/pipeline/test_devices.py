"""The few-shot half on the device it is given: every step computes there (shown with torch's ``meta`` device, whose
tensors hold no data, so any result copied back fails), the precision enters the keys and the device does not, and a
device this machine lacks is refused before any work in one line."""

import pytest
import torch

from flows.fewshot import fewshot
from tests.pipeline.helpers import small_config
from tests.pipeline.test_steps import first_episode
from tint_core.devices import check_device
from tint_core.fewshot.config import ComputeConfig
from tint_core.pipeline import classify, unlabelled
from tint_core.pipeline.checks import check_benchmark
from tint_core.pipeline.config import ExecutionConfig
from tint_core.store import ArtifactStore

META = ComputeConfig(device="meta")


def _on(config, compute: ComputeConfig):
    """The small configuration's teacher and student (used as they are, no preparation) on ``compute``."""
    teacher = config.teacher.updated(pretrain=None, centre_on_base=False,
                                     model=config.teacher.model.updated(compute=compute))  # fmt: skip
    student = config.student.updated(pretrain=None, model=config.student.model.updated(compute=compute))
    return teacher, student


def test_every_few_shot_step_computes_on_the_device_it_is_given_and_writes_nothing_when_it_fails(tmp_path):
    url = str(tmp_path / "store")
    config = small_config(url)
    dataset, episode = first_episode(url, config)
    pool = unlabelled.draw_pool(url, dataset, episode, "real_pool", None, 0)
    on_cpu = _on(config, ComputeConfig())[1]
    on_cpu = on_cpu.updated(training=on_cpu.training.updated(steps=2))  # not the student distilled below
    trained = classify.distill_student(url, episode, "supports_only", None, None, on_cpu, None)  # scored on meta
    store = ArtifactStore(url)
    before = sorted(manifest.key for manifest in store.list())
    teacher, student = _on(config, META)
    steps = {
        "pre-training": lambda: classify.prepare_backbone(url, dataset, student.model.backbone,
                                                          config.student.pretrain, False, META),
        "centring": lambda: classify.prepare_backbone(url, dataset, teacher.model.backbone, None, True, META),
        "teacher's score": lambda: classify.score_teacher(url, episode, teacher, None),
        "labelling": lambda: classify.label_images(url, episode, "real_pool", [pool], teacher, None),
        "quality": lambda: classify.measure_quality(url, episode, "real_pool", [pool], pool, teacher, None, 3),
        "distillation": lambda: classify.distill_student(url, episode, "supports_only", None, None, student, None),
        "evaluation": lambda: classify.evaluate_student(url, episode, trained, "meta"),
    }  # fmt: skip
    for name, step in steps.items():
        try:
            step()
        except (NotImplementedError, RuntimeError) as error:  # the first result copied back from the device
            assert "meta" in str(error), (name, error)
        else:
            pytest.fail(f"{name} computed elsewhere than on the device it was given")
        assert sorted(manifest.key for manifest in store.list()) == before, name


def test_the_precision_enters_the_keys_and_the_device_does_not(tmp_path):
    url = str(tmp_path / "store")
    config = small_config(url)
    dataset, episode = first_episode(url, config)
    pool = unlabelled.draw_pool(url, dataset, episode, "real_pool", None, 0)

    def keys(compute: ComputeConfig) -> list[str]:
        teacher, student = _on(config, compute)
        return [*classify.label_keys(url, episode, "real_pool", [pool], teacher, None),
                *classify.teacher_score_keys(url, episode, teacher, None),
                *classify.quality_keys(url, episode, "real_pool", [pool], pool, teacher, None, 3),
                *classify.distill_keys(url, episode, "supports_only", None, None, student, None),
                *classify.backbone_keys(url, dataset, student.model.backbone, config.student.pretrain, False,
                                        compute)]  # fmt: skip

    fp32 = keys(ComputeConfig())
    assert keys(ComputeConfig(device="cuda:3")) == keys(ComputeConfig(device="auto")) == fp32
    bf16 = keys(ComputeConfig(precision="bf16"))
    assert all(a != b for a, b in zip(fp32, bf16, strict=True))
    assert keys(ComputeConfig(device="cuda", precision="bf16")) == bf16


def test_bf16_labels_and_students_are_close_to_fp32_ones(tmp_path):
    url = str(tmp_path / "store")
    config = small_config(url)
    dataset, episode = first_episode(url, config)
    pool = unlabelled.draw_pool(url, dataset, episode, "real_pool", None, 0)
    store = ArtifactStore(url)
    logits, scores = {}, {}
    for precision in ("fp32", "bf16"):
        teacher, student = _on(config, ComputeConfig(precision=precision))
        labels = classify.label_images(url, episode, "real_pool", [pool], teacher, None)
        logits[precision] = torch.tensor(store.get(labels)["labels"].column("logits").to_pylist())
        trained = classify.distill_student(url, episode, "real_pool", [pool], labels, student, None)
        weights = store.get(trained)["weights"].values()
        assert {value.dtype for value in weights if value.is_floating_point()} == {torch.float32}  # fp32 under autocast
        scores[precision] = store.get(classify.evaluate_student(url, episode, trained))["score"]["accuracy"]
    assert not torch.equal(logits["fp32"], logits["bf16"])  # bf16 really ran
    assert torch.allclose(logits["fp32"], logits["bf16"], atol=0.25)  # τ = 10: logits in [-10, 10]
    assert (logits["fp32"].argmax(1) == logits["bf16"].argmax(1)).float().mean() > 0.95
    assert abs(scores["fp32"] - scores["bf16"]) < 0.15


def test_a_device_is_checked_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device, message in [("cuda", "no CUDA device: use 'cpu', or 'auto'"), ("gpu0", "is not a device"),
                            ("meta", "not a device to compute on")]:  # fmt: skip
        with pytest.raises(ValueError, match=message) as caught:
            check_device(device, "student.model.compute.device")
        assert str(caught.value).startswith("student.model.compute.device") and "\n" not in str(caught.value)
    check_device("auto", "x")  # the CPU, here
    check_device("cpu", "x")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_device("cuda:1", "x")
    with pytest.raises(ValueError, match="'cuda:2', but this machine has 2 CUDA device"):
        check_device("cuda:2", "x")


def test_a_gpu_setting_without_a_gpu_fails_before_any_work_where_the_work_would_run(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = small_config(str(tmp_path / "store"))
    cuda = ComputeConfig(device="cuda")
    on_gpu = config.updated(student=config.student.updated(model=config.student.model.updated(compute=cuda)))
    with pytest.raises(ValueError, match="^student.model.compute.device is 'cuda', but this machine has no CUDA"):
        check_benchmark(on_gpu)
    units_on_gpu = config.updated(generator=config.generator.updated(specialization=config.generator.specialization
                                  .updated(backbone=config.generator.specialization.backbone.updated(device="cuda"))))  # fmt: skip
    with pytest.raises(ValueError, match="^generator.specialization.backbone.device is 'cuda'"):
        check_benchmark(units_on_gpu)
    assert not (tmp_path / "store").exists()
    # On workers, the few-shot steps' devices are the workers' business: only pre-training runs here.
    elsewhere = on_gpu.updated(execution=ExecutionConfig(fewshot_fan_out="deployments"))
    with pytest.raises(ValueError, match="^student.model.compute.device"):
        check_benchmark(elsewhere)  # its student is still pre-trained here
    check_benchmark(elsewhere.updated(student=elsewhere.student.updated(pretrain=None)))
    # ... and a worker's run refuses a device its machine lacks before any work.
    teacher, student = _on(config, cuda)
    with pytest.raises(ValueError, match="^teacher.model.compute.device is 'cuda'"):
        fewshot.fn(config.store, [], teacher, student)
