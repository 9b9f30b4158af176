import pytest

from tint_core.data import EpisodeSampler, FewShotDataset, ImageRecord, load_episodes, save_episodes


class NeverLoads(FewShotDataset):
    """A dataset whose images cannot be loaded: proves the sampler only reads paths."""

    def load(self, *args, **kwargs):
        raise AssertionError("the sampler must not load images")


def _dataset(counts: dict[str, int]) -> FewShotDataset:
    return NeverLoads([ImageRecord(f"/x/{c}/{i}.png", c, "novel") for c, n in counts.items() for i in range(n)])


def test_same_seed_and_id_give_the_same_episode_whatever_was_drawn_before():
    dataset = _dataset({str(c): 30 for c in range(8)})
    a = EpisodeSampler(dataset, "novel", 5, 2, 3, seed=7)
    b = EpisodeSampler(dataset, "test", 5, 2, 3, seed=7)
    assert a.episodes(5)[4] == b.sample(4)
    assert a.sample(4) != a.sample(3)
    assert EpisodeSampler(dataset, "novel", 5, 2, 3, seed=8).sample(4) != a.sample(4)


def test_supports_and_queries_are_disjoint_and_sized_class_major():
    dataset = _dataset({str(c): 12 for c in range(6)})
    for episode in EpisodeSampler(dataset, "novel", 4, 3, 5, seed=0).episodes(20):
        assert not set(episode.support_paths) & set(episode.query_paths)
        assert len(set(episode.classes)) == 4
        assert len(set(episode.support_paths)) == 12 and len(set(episode.query_paths)) == 20
        for label, name in enumerate(episode.classes):
            assert all(f"/{name}/" in p for p in episode.support_paths[3 * label : 3 * label + 3])
            assert all(f"/{name}/" in p for p in episode.query_paths[5 * label : 5 * label + 5])
        assert episode.support_labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_a_class_with_fewer_than_k_plus_q_images_is_named():
    dataset = _dataset({"cat": 30, "dog": 30, "owl": 6, "fox": 30})
    with pytest.raises(ValueError, match=r"K\+Q = 7 .*'owl' has 6"):
        EpisodeSampler(dataset, "novel", 3, 2, 5)


def test_more_ways_than_classes_is_rejected():
    with pytest.raises(ValueError, match="N=5 ways requested but split 'novel' has only 3 classes"):
        EpisodeSampler(_dataset({"a": 9, "b": 9, "c": 9}), "novel", 5, 1, 1)


def test_episodes_round_trip_through_parquet_and_can_be_redrawn(tmp_path):
    dataset = _dataset({str(c): 25 for c in range(7)})
    sampler = EpisodeSampler(dataset, "novel", 5, 1, 15, seed=3)
    episodes = sampler.episodes(4, start=10)
    save_episodes(episodes, str(tmp_path / "episodes.parquet"))
    loaded = load_episodes(str(tmp_path / "episodes.parquet"))
    assert loaded == episodes
    assert [sampler.sample(e.episode_id) for e in loaded] == loaded
