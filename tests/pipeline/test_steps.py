"""The pipeline's steps as library functions (no Prefect): keys known before the work, independent of grouping and
of the episode count, deterministic outputs, and the results summary."""

import shutil
from pathlib import Path

import pytest

from tests.pipeline.helpers import small_config
from tint_core.pipeline import classify, data, generation, results, unlabelled
from tint_core.pipeline.checks import check_benchmark, split_counts
from tint_core.pipeline.config import EpisodeConfig, EvaluationConfig
from tint_core.pipeline.resources import MODELS, ModelCache
from tint_core.store import ArtifactStore


def first_episode(url: str, config) -> tuple:
    dataset = data.index_dataset(url, config.dataset)
    return dataset, data.sample_episode(url, dataset, config.episodes, 0, config.dataset.image_size)


def test_grouping_classes_into_units_never_changes_a_key_or_recomputes_a_class(tmp_path):
    url = str(tmp_path / "store")
    config = small_config(url)
    _, episode = first_episode(url, config)
    together = generation.specialize_unit(url, episode, [0, 1, 2], config.generator)
    one_by_one = [key for i in range(3) for key in generation.specialize_keys(url, episode, [i], config.generator)]
    assert [ref.key for ref in together] == one_by_one
    artifacts = len(ArtifactStore(url).list())
    assert generation.specialize_unit(url, episode, [1], config.generator) == [together[1]]
    assert len(ArtifactStore(url).list()) == artifacts


def test_an_episode_key_depends_on_its_id_not_on_the_episode_count(tmp_path):
    url = str(tmp_path / "store")
    config = small_config(url)
    dataset = data.index_dataset(url, config.dataset)
    keys = [data.episode_keys(url, dataset, config.episodes.updated(episodes=count), 1, None) for count in (2, 600)]
    assert keys[0] == keys[1] != data.episode_keys(url, dataset, config.episodes, 0, None)


def test_the_same_inputs_and_seed_give_the_same_artifact_digests(tmp_path):
    url = str(tmp_path / "store")
    config = small_config(url)
    teacher = config.teacher.updated(pretrain=None, centre_on_base=False)
    digests = []
    for _ in range(2):
        dataset, episode = first_episode(url, config)
        specs = generation.specialize_unit(url, episode, [0, 1, 2], config.generator)
        images = generation.generate_unit(url, specs, config.generator, "tint")
        labels = classify.label_images(url, episode, "tint", [images], teacher, None)
        student = classify.distill_student(url, episode, "tint", [images], labels,
                                           config.student.updated(pretrain=None), None)  # fmt: skip
        augmented = unlabelled.augment_supports(url, episode, config.controls.augmented_supports, 5)
        pool = unlabelled.draw_pool(url, dataset, episode, "base_pool", 4, 0)
        digests.append([ref.digest for ref in (dataset, episode, *specs, *images, labels, student, *augmented, *pool)])
        shutil.rmtree(Path(url) / "artifacts")  # everything is computed again from scratch
    assert digests[0] == digests[1]


def test_every_method_but_supports_only_needs_unlabelled_images_and_supports_only_takes_none(tmp_path):
    url = str(tmp_path / "store")
    config = small_config(url)
    dataset, episode = first_episode(url, config)
    teacher = config.teacher
    with pytest.raises(ValueError, match="'tint' needs its unlabelled images"):
        classify.label_keys(url, episode, "tint", None, teacher, None)
    with pytest.raises(ValueError, match="'base_pool' needs its unlabelled images"):
        classify.label_keys(url, episode, "base_pool", [[]], teacher, None)
    with pytest.raises(ValueError, match="'supports_only' uses no unlabelled images"):
        classify.distill_keys(url, episode, "supports_only", [[episode]], None, config.student, None)
    with pytest.raises(ValueError, match="supports_only takes them"):
        classify.distill_keys(url, episode, "supports_only", None, episode, config.student, None)
    with pytest.raises(ValueError, match="real_pool takes every unused image"):
        unlabelled.pool_keys(url, dataset, episode, "real_pool", 4, 0)


def test_the_real_pool_is_the_episode_classes_unused_images(tmp_path):
    url = str(tmp_path / "store")
    config = small_config(url)
    dataset, episode_ref = first_episode(url, config)
    store = ArtifactStore(url)
    episode = data.load_episode(store, episode_ref)
    paths, labels = data.real_pool(store, dataset, episode)
    used = {image.path for entry in episode.classes for image in (*entry.supports, *entry.queries)}
    counts = data.digits_class_counts("novel", config.dataset.digits_per_class)
    assert not used & set(paths)
    assert len(paths) == sum(counts[name] for name in episode.class_names) - len(used)
    assert all(path.split("/")[1] == episode.class_names[label] for path, label in zip(paths, labels.tolist()))


def test_a_digits_index_whose_folder_is_gone_is_set_aside_and_rebuilt(tmp_path):
    url = str(tmp_path / "store")
    config = small_config(url)
    ref = data.index_dataset(url, config.dataset)
    shutil.rmtree(Path(url) / "datasets")
    assert data.dataset_keys(url, config.dataset) == [ref.key]
    assert not ArtifactStore(url).exists(ref.key)  # quarantined, so the step runs again
    assert data.index_dataset(url, config.dataset).digest == ref.digest
    assert (Path(url) / "datasets" / "digits-16-first20" / "novel" / "5").is_dir()


def test_a_digits_subset_is_a_dataset_of_its_own_that_the_checks_count(tmp_path):
    url = str(tmp_path / "store")
    config = small_config(url)
    subset = config.dataset.updated(digits_per_class=7)
    whole = data.index_dataset(url, config.dataset)
    seven = data.index_dataset(url, subset)
    assert seven.key != whole.key
    store = ArtifactStore(url)
    assert data.dataset_root_of(store, seven) != data.dataset_root_of(store, whole)
    assert data.open_dataset(store, seven).class_counts("novel") == {str(digit): 7 for digit in range(5, 10)}
    assert split_counts(subset, "base") == {str(digit): 7 for digit in range(5)}
    # K + Q = 1 + 4 leaves 2 spare images of each class, fewer than the real pool's quality needs (k + 1 = 4).
    with pytest.raises(ValueError, match="spare images beyond K\\+Q = 5"):
        check_benchmark(config.updated(dataset=subset))


def test_the_diffusion_backbone_is_loaded_once_per_process_for_consecutive_units(tmp_path):
    url = str(tmp_path / "store")
    config = small_config(url)
    _, episode = first_episode(url, config)
    MODELS.clear()
    loads = MODELS.loads
    for classes in ([0], [1], [2]):
        generation.specialize_unit(url, episode, classes, config.generator)
    assert MODELS.loads == loads + 1


def test_the_model_cache_evicts_the_least_recently_used():
    cache = ModelCache(capacity=2)
    built = []
    for key in ("a", "b", "a", "c", "b"):
        cache.get(key, lambda key=key: built.append(key) or key)
    assert built == ["a", "b", "c", "b"]  # "a" was used again before "c" came, so "b" went first


def _summary(accuracy: dict, agreement: dict | None = None, precision: dict | None = None, recall: dict | None = None):
    return results.summarize_methods(accuracy, [0.85, 0.75, 0.95], agreement or {}, precision or {}, recall or {},
                                     EpisodeConfig(n_way=5, n_query=15, episodes=3),
                                     EvaluationConfig(target_half_width=0.05), max_query=100)  # fmt: skip


def test_the_summary_pairs_each_method_with_each_baseline_episode_by_episode():
    accuracy = {"tint": [0.8, 0.7, 0.9], "supports_only": [0.6, 0.6, 0.8], "augmented_supports": [0.7, 0.75, 0.8],
                "real_pool": [0.9, 0.9, 0.9]}  # fmt: skip
    summary = _summary(accuracy, {"tint": [0.5, 0.7, 0.6]}, {"tint": [0.9, 0.8, 0.7]}, {"tint": [0.1, 0.2, 0.3]})
    tint = summary.methods["tint"]
    gain = tint.gain_over("supports_only")
    assert gain.mean == pytest.approx(0.1333333) and gain.sd == pytest.approx(0.057735, rel=1e-4)
    assert tint.gain_over("augmented_supports").mean == pytest.approx(0.05)
    assert summary.methods["supports_only"].gain_over("supports_only") is None
    assert set(summary.methods["augmented_supports"].gains) == {"supports_only"}
    assert tint.teacher_agreement == pytest.approx(0.6) and summary.methods["real_pool"].teacher_agreement is None
    assert tint.precision.mean == pytest.approx(0.8) and tint.recall.mean == pytest.approx(0.2)
    assert summary.teacher.mean == pytest.approx(0.85)
    assert tint.plan is not None and tint.plan.predicted_half_width <= 0.05
    # E for ±5 points on both paired gains: the wider spread (over augmented_supports) decides
    spread = max(gain.sd, tint.gain_over("augmented_supports").sd)
    assert tint.episodes_for_gain == results.episodes_for_half_width(spread, 0.05)
    markdown = results.summary_markdown(summary)
    order = [markdown.index(f"| student: {m} |") for m in ("supports_only", "augmented_supports", "tint", "real_pool")]
    assert order == sorted(order) and "+13.3 ± " in markdown and "| 60% |" in markdown
    assert "| 0.80 / 0.20 |" in markdown and "gain over augmented_supports (points)" in markdown


def test_the_verdict_names_what_beats_each_baseline_with_an_interval_excluding_zero():
    accuracy = {"supports_only": [0.60, 0.62, 0.64], "augmented_supports": [0.70, 0.72, 0.74],
                "ti_only": [0.50, 0.52, 0.54], "tint": [0.66, 0.68, 0.70], "real_pool": [0.80, 0.82, 0.84]}  # fmt: skip
    sentence = results.verdict(_summary(accuracy))
    assert sentence == (
        "Against supports_only and augmented_supports, counting a gain only where its 95% interval excludes zero "
        "(3 episodes): augmented_supports beats supports_only; ti_only beats neither; tint beats supports_only but "
        "not augmented_supports; real_pool beats both; worse than supports_only: ti_only; than augmented_supports: "
        "ti_only and tint."
    )
    assert results.verdict(_summary({"tint": [0.6, 0.7, 0.8]})) == ""  # no baseline, nothing to say


def test_an_episode_is_stored_as_a_parquet_table_and_read_back_unchanged(tmp_path):
    url = str(tmp_path / "store")
    config = small_config(url)
    _, ref = first_episode(url, config)
    store = ArtifactStore(url)
    table = store.get(ref)["images"]
    assert table.column_names == ["role", "label", "class", "path", "sha256"]
    assert table.num_rows == 3 * (1 + 4)
    episode = data.load_episode(store, ref)
    assert data.EpisodeData.from_parts(*episode.to_parts().values()) == episode
    no_queries = episode.model_copy(update={"classes": [c.model_copy(update={"queries": []}) for c in episode.classes]})
    assert data.EpisodeData.from_parts(*no_queries.to_parts().values()) == no_queries
    supports, labels = episode.supports()
    assert supports.shape == (3, 3, 16, 16) and labels.tolist() == [0, 1, 2]


def test_tint_variants_share_images_exactly_when_their_settings_agree(tmp_path):
    url = str(tmp_path / "store")
    config = small_config(url)
    _, episode = first_episode(url, config)
    specs = generation.specialize_unit(url, episode, [0, 1, 2], config.generator)
    keys = {m: generation.generate_keys(url, specs, config.generator, m) for m in ("tint", "tint@1", "tint@0.5")}
    assert keys["tint"] == keys["tint@1"] and keys["tint"] != keys["tint@0.5"]
    half = generation.generate_unit(url, specs, config.generator, "tint@0.5")
    alphas = ArtifactStore(url).get(half[0])["images"].metadata.column("alpha").to_pylist()
    assert alphas == [0.5] * config.generator.generation.images_per_class
