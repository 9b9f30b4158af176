import io
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from tint_core.data import FewShotDataset, load_images, write_digits_dataset
from tint_core.data.digits import DIGITS_PER_CLASS
from tint_core.images import ImageReadError, load_image

REPO = Path(__file__).parents[2]


def _save(path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


@pytest.fixture
def mixed_folder(tmp_path):
    """train/val/test names, images of several sizes and modes, plus files that are not images."""
    _save(tmp_path / "train" / "cat" / "a.png", Image.new("RGB", (10, 12), (255, 0, 0)))
    _save(tmp_path / "train" / "cat" / "b.jpg", Image.new("L", (7, 7), 100))
    _save(tmp_path / "train" / "dog" / "c.png", Image.new("RGBA", (20, 5), (0, 0, 0, 0)))
    _save(tmp_path / "val" / "fox" / "d.png", Image.new("P", (9, 9)))
    _save(tmp_path / "test" / "owl" / "e.png", Image.new("I;16", (6, 8)))
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "README").write_text("ignored")
    return tmp_path


def test_image_folder_maps_train_val_test_to_base_val_novel(mixed_folder):
    dataset = FewShotDataset.from_image_folder(str(mixed_folder))
    assert dataset.splits == ("base", "val", "novel")
    assert dataset.classes("base") == dataset.classes("train") == ["cat", "dog"]
    assert dataset.class_counts("base") == {"cat": 2, "dog": 1}
    assert dataset.classes("test") == ["owl"]


def test_images_of_any_size_and_mode_load_as_rgb_in_unit_range(mixed_folder):
    dataset = FewShotDataset.from_image_folder(str(mixed_folder))
    images, labels, classes = dataset.load_split("base", size=8)
    assert images.shape == (3, 3, 8, 8) and images.dtype == torch.float32
    assert 0 <= float(images.min()) and float(images.max()) <= 1
    assert labels.tolist() == [0, 0, 1] and classes == ["cat", "dog"]
    assert torch.allclose(images[2], torch.ones(3, 8, 8))  # transparent → white


def test_different_sizes_without_a_target_size_are_an_error(mixed_folder):
    dataset = FewShotDataset.from_image_folder(str(mixed_folder))
    with pytest.raises(ValueError, match="pass size="):
        dataset.load_split("base")


def test_manifest_round_trip_keeps_every_record(mixed_folder, tmp_path):
    dataset = FewShotDataset.from_image_folder(str(mixed_folder))
    dataset.to_manifest(str(mixed_folder / "manifest.parquet"))
    stored = pq.read_table(mixed_folder / "manifest.parquet").column("path").to_pylist()
    assert all(not path.startswith("/") for path in stored)  # relative: the folder can move
    again = FewShotDataset.from_manifest(str(mixed_folder / "manifest.parquet"))
    assert sorted(again.records, key=str) == sorted(dataset.records, key=str)


def test_manifest_accepts_split_aliases_and_names_missing_columns(tmp_path):
    _save(tmp_path / "img" / "x.png", Image.new("RGB", (4, 4)))
    pq.write_table(pa.table({"path": ["img/x.png"], "class": ["a"], "split": ["train"]}), tmp_path / "m.parquet")
    assert FewShotDataset.from_manifest(str(tmp_path / "m.parquet")).classes("base") == ["a"]
    pq.write_table(pa.table({"path": ["img/x.png"], "label": ["a"]}), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"lacks columns \['class', 'split'\]"):
        FewShotDataset.from_manifest(str(tmp_path / "bad.parquet"))


def test_any_fsspec_url_works_for_example_in_memory():
    import fsspec

    fs = fsspec.filesystem("memory")
    for name in ("a", "b"):
        buffer = io.BytesIO()
        Image.new("L", (5, 5), 200).save(buffer, format="PNG")
        fs.pipe(f"/fsspec_test/novel/{name}/0.png", buffer.getvalue())
    dataset = FewShotDataset.from_image_folder("memory://fsspec_test")
    images, _ = dataset.load(dataset.paths("novel", "a"))
    assert images.shape == (1, 3, 5, 5)


def test_corrupt_file_is_named_and_skipped_only_when_asked(tmp_path, caplog):
    good, bad, missing = tmp_path / "good.png", tmp_path / "bad.png", tmp_path / "missing.png"
    Image.new("RGB", (4, 4)).save(good)
    bad.write_bytes(b"\x89PNG truncated")
    with pytest.raises(ImageReadError, match="bad.png"):
        load_images([str(good), str(bad)])
    with pytest.raises(ImageReadError, match="missing.png"):
        load_images([str(good), str(missing)])
    images, kept = load_images([str(good), str(bad), str(missing)], skip_unreadable=True)
    assert images.shape[0] == 1 and kept == [str(good)]
    assert "bad.png" in caplog.text and "missing.png" in caplog.text


def test_folder_without_split_folders_is_rejected(tmp_path):
    _save(tmp_path / "cats" / "a.png", Image.new("RGB", (4, 4)))
    with pytest.raises(ValueError, match="no split folder"):
        FewShotDataset.from_image_folder(str(tmp_path))


def test_digits_converter_writes_the_real_bundled_digits(digits):
    assert digits.splits == ("base", "novel")
    assert digits.classes("base") == ["0", "1", "2", "3", "4"]
    assert digits.classes("novel") == ["5", "6", "7", "8", "9"]
    assert sum(digits.class_counts("base").values()) + sum(digits.class_counts("novel").values()) == 1797
    # The counts the configuration checks use without loading scikit-learn are the written ones.
    assert {**digits.class_counts("base"), **digits.class_counts("novel")} == {
        str(digit): count for digit, count in DIGITS_PER_CLASS.items()}  # fmt: skip
    images, _ = digits.load(digits.paths("novel", "7")[:3])
    assert images.shape == (3, 3, 16, 16) and float(images.max()) > 0.9  # bright ink on black


def test_a_digits_subset_is_the_first_images_of_each_digit(digits, tmp_path):
    subset = write_digits_dataset(str(tmp_path / "subset"), size=16, per_class=3)
    assert {**subset.class_counts("base"), **subset.class_counts("novel")} == {str(digit): 3 for digit in range(10)}
    first = digits.paths("novel", "7")[:3]
    assert [Path(path).name for path in subset.paths("novel", "7")] == [Path(path).name for path in first]
    assert [Path(path).read_bytes() for path in subset.paths("novel", "7")] == [Path(path).read_bytes() for path in first]
    with pytest.raises(ValueError, match="per_class must be at least 1"):
        write_digits_dataset(str(tmp_path / "none"), per_class=0)


def test_digits_rewritten_by_other_processes_are_never_seen_half_written(tmp_path):
    """Two benchmarks on one store may both write the digits into it: a reader must only ever see whole images."""
    root = tmp_path / "digits"
    write_digits_dataset(str(root), size=16)
    paths = sorted(root.rglob("*.png"))
    rewrite = f"from tint_core.data import write_digits_dataset\nfor _ in range(4): write_digits_dataset({str(root)!r}, size=16)"
    writers = [subprocess.Popen([sys.executable, "-c", rewrite], cwd=REPO) for _ in range(2)]
    try:
        reads = 0
        while any(writer.poll() is None for writer in writers):
            for path in paths:
                load_image(path.read_bytes(), name=str(path))  # raises ImageReadError on a partial file
            reads += len(paths)
    finally:
        for writer in writers:
            writer.kill()
            writer.wait()
    assert all(writer.returncode == 0 for writer in writers) and reads > 0
    assert sorted(root.rglob("*.png")) == paths and not list(root.rglob("*.tmp"))
