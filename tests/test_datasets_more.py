"""The other built-in datasets: CIFAR-10/100 (binary), KMNIST and EMNIST (IDX), an image folder, and
scikit-learn's digits. Real formats written here (no download works in tests); digits is real data."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile

import numpy as np
import pytest
import torch

import prunekit
from prunekit.data import DATA_ENV_VAR, KMNIST, load_dataset, write_idx
from prunekit.data import cifar as cifar_module
from prunekit.data import emnist as emnist_module
from prunekit.errors import ChecksumError, DataError


@pytest.fixture(autouse=True)
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def cifar_archive(folder, spec, per_file=6):
    """A tar.gz in the real binary layout, with `per_file` records per member."""
    rng = np.random.default_rng(0)
    members = {}
    for member in (*spec.train_members, *spec.test_members):
        labels = rng.integers(0, spec.num_classes, (per_file, spec.label_bytes), dtype=np.uint8)
        pixels = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
        members[member] = np.concatenate([labels, pixels], axis=1).tobytes(), labels[:, -1], pixels
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, (data, _, _) in members.items():
            info = tarfile.TarInfo(f"{spec.folder}/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = folder / spec.archive
    path.write_bytes(buffer.getvalue())
    return path, members


@pytest.mark.parametrize("spec", [cifar_module.CIFAR10, cifar_module.CIFAR100])
def test_cifar_binary_archives_are_verified_and_read_in_place(tmp_path, spec):
    path, members = cifar_archive(tmp_path, spec)
    with pytest.raises(ChecksumError, match=f"md5 is .*, expected {spec.md5}"):
        load_dataset(spec.name, tmp_path, download=False)
    fake = cifar_module.CifarSpec(**{**spec.__dict__, "md5": hashlib.md5(path.read_bytes()).hexdigest()})
    data = fake.load(tmp_path, download=False)
    first = spec.train_members[0]
    assert data.train_images.shape == (6 * len(spec.train_members), 3, 32, 32)
    assert data.input_shape == (3, 32, 32) and data.num_classes == spec.num_classes
    assert torch.equal(data.train_images[0].flatten(), torch.from_numpy(members[first][2][0]))  # R, G, B planes
    assert data.train_labels[:6].tolist() == members[first][1].tolist()
    x, _ = data.split("test")
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32


def test_an_extracted_cifar_folder_is_read_and_a_truncated_record_is_named(tmp_path):
    spec = cifar_module.CIFAR10
    _, members = cifar_archive(tmp_path, spec, per_file=2)
    folder = tmp_path / "x" / spec.folder
    folder.mkdir(parents=True)
    for member, (data, _, _) in members.items():
        (folder / member).write_bytes(data)
    with pytest.warns(UserWarning, match="only their sizes and labels are checked"):
        assert spec.load(tmp_path / "x", download=False).train_images.shape == (10, 3, 32, 32)
    (folder / "test_batch.bin").write_bytes(members["test_batch.bin"][0][:-5])
    with pytest.warns(UserWarning), pytest.raises(DataError, match="test_batch.bin: .* not a whole number of 3073-byte"):
        spec.load(tmp_path / "x", download=False)


def test_kmnist_files_are_checked_by_the_published_archive_md5(tmp_path):
    rng = np.random.default_rng(0)
    raw = {"train-images-idx3-ubyte": write_idx(rng.integers(0, 256, (3, 28, 28), dtype=np.uint8))}
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(raw["train-images-idx3-ubyte"]))
    from prunekit.data.idx_sets import read_verified

    with pytest.raises(ChecksumError, match="md5 of the .gz archive is .*, expected bdb82020997e1d708af4cf47b453dcf7"):
        read_verified(path, KMNIST.files["train_images"], "kmnist")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "train-images-idx3-ubyte").write_bytes(raw["train-images-idx3-ubyte"])
    with pytest.warns(UserWarning, match="no checksum is published"):
        read_verified(tmp_path / "raw" / "train-images-idx3-ubyte", KMNIST.files["train_images"], "kmnist")


def test_emnist_reads_a_split_from_the_verified_zip(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = {s: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for s, n in (("train", 5), ("test", 3))}
    labels = {s: rng.integers(1, 27, len(images[s]), dtype=np.uint8) for s in images}  # letters: 1..26
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for s in images:
            archive.writestr(f"gzip/emnist-letters-{s}-images-idx3-ubyte.gz", gzip.compress(write_idx(images[s])))
            archive.writestr(f"gzip/emnist-letters-{s}-labels-idx1-ubyte.gz", gzip.compress(write_idx(labels[s])))
    (tmp_path / "gzip.zip").write_bytes(buffer.getvalue())
    with pytest.raises(ChecksumError, match="expected 58c8d27c78d21e728a6bc7b3cc06412e"):
        load_dataset("emnist-letters", tmp_path, download=False)
    monkeypatch.setattr(emnist_module, "ARCHIVE_MD5", hashlib.md5(buffer.getvalue()).hexdigest())
    data = load_dataset("emnist-letters", tmp_path, download=False)
    assert data.num_classes == 26 and data.train_labels.tolist() == (labels["train"] - 1).tolist()
    assert torch.equal(data.train_images[0, 0], torch.from_numpy(images["train"][0].T.copy()))  # turned upright


def test_digits_is_real_and_needs_no_download():
    data = prunekit.load_dataset("digits")
    assert data.train_images.shape == (1442, 1, 8, 8) and data.test_images.shape == (355, 1, 8, 8)
    assert torch.bincount(data.test_labels).tolist() == [35, 36, 35, 36, 36, 36, 36, 35, 34, 36]  # stratified
    assert int(data.train_images.max()) == 255


def test_an_image_folder_with_classes_and_splits(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    data = load_dataset("imagefolder", tmp_path)
    assert data.input_shape == (3, 12, 10) and data.classes == ("cat", "dog")
    assert len(data.train_labels) == len(data.test_labels) == 6
    (tmp_path / "train" / "dog" / "3.png").write_text("not an image")
    with pytest.raises(DataError, match="3.png is not a readable image"):
        load_dataset("imagefolder", tmp_path)
    with pytest.raises(prunekit.ConfigError, match="reads the folder given as --data-dir"):
        load_dataset("imagefolder")
