"""Tests of prunekit.data: IDX parsing, locating, verifying, downloading and loading datasets."""

from __future__ import annotations

import gzip
import os
import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from prunekit.data import (DATA_ENV_VAR, DATASETS, MIRRORS_ENV_VAR, MNIST, Dataset, DatasetSpec, FileSpec,
                           download_file, find_files, list_datasets, load_dataset, load_from_spec, parse_idx,
                           search_folders, write_idx)
from prunekit.data.idx import check_split, read_maybe_gzip
from prunekit.errors import ChecksumError, ConfigError, DataError

MNIST_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test reads the real user cache, and none goes through a proxy."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv(MIRRORS_ENV_VAR, raising=False)
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture(scope="session")
def mnist_files(mnist_dir) -> Path:
    """The folder that holds the real MNIST .gz files themselves."""
    folder = mnist_dir.resolve()  # absolute: symlinks to it are made elsewhere
    return folder / "mnist" if (folder / "mnist").is_dir() else folder


def link_mnist(src: Path, dst: Path, skip=()) -> Path:
    """Symlink the four real MNIST .gz files into ``dst`` (except those named in ``skip``)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in MNIST_NAMES:
        if name not in skip:
            (dst / f"{name}.gz").symlink_to(src / f"{name}.gz")
    return dst


class FakeData:
    """A tiny MNIST-like dataset (20 train / 5 test images) with its spec and .gz bytes."""

    def __init__(self, name="fake"):
        rng = np.random.default_rng(0)
        self.arrays = {"train_images": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
                       "train_labels": rng.integers(0, 10, 20, dtype=np.uint8),
                       "test_images": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
                       "test_labels": rng.integers(0, 10, 5, dtype=np.uint8)}
        self.raw = {role: write_idx(a) for role, a in self.arrays.items()}
        self.gz = {role: gzip.compress(b, mtime=0) for role, b in self.raw.items()}
        files = {}
        for role in self.arrays:
            fname = f"{name}-{role.replace('_', '-')}"
            files[role] = FileSpec(fname, sha256=hashlib.sha256(self.raw[role]).hexdigest())
        self.spec = DatasetSpec(name=name, files=files, mirrors=(), mean=0.5, std=0.25,
                                n_train=20, n_test=5)

    def filename(self, role):
        return self.spec.files[role].filename

    def write(self, folder: Path, roles=None, raw=False) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for role in roles or self.arrays:
            suffix, data = ("", self.raw[role]) if raw else (".gz", self.gz[role])
            (folder / (self.filename(role) + suffix)).write_bytes(data)
        return folder

    def check(self, ds: Dataset):
        for role, arr in self.arrays.items():
            want = torch.from_numpy(arr.astype(np.int64 if role.endswith("labels") else np.uint8))
            assert torch.equal(getattr(ds, role), want if role.endswith("labels") else want.unsqueeze(1))


@pytest.fixture
def fake():
    return FakeData()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        body = self.server.routes.get(self.path)
        if body is None:
            self.send_error(404, "no such file")
            return
        if self.path.startswith("/slow/"):
            time.sleep(1.0)
        self.send_response(200)
        extra = 1000 if self.path.startswith("/short/") else 0
        self.send_header("Content-Length", str(len(body) + extra))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def server(fake):
    """A local HTTP server: /good/ serves the fake .gz files, /bad/ corrupt ones, /short/ and
    /slow/ truncated and late ones; anything else is a 404."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.requests = []
    srv.routes = {}
    for role, data in fake.gz.items():
        name = fake.filename(role) + ".gz"
        corrupt = gzip.compress(fake.raw[role][:-1] + bytes([fake.raw[role][-1] ^ 1]), mtime=0)
        srv.routes.update({f"/good/{name}": data, f"/bad/{name}": corrupt,
                           f"/short/{name}": data, f"/slow/{name}": data})
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_port}"
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


# ----------------------------------------------------------------------------- IDX format

@pytest.mark.parametrize("shape", [(7,), (3, 28, 28), (0,), (2, 1, 5)])
def test_idx_round_trip(shape):
    arr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    data = write_idx(arr)
    assert data[:4] == bytes([0, 0, 8, len(shape)])
    assert len(data) == 4 + 4 * len(shape) + arr.size
    back = parse_idx(data, source="x.idx")
    assert back.dtype == np.uint8 and back.shape == shape
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("mutate, words", [
    (lambda d: b"\x01" + d[1:], ["magic", "0x01000801"]),
    (lambda d: d[:2] + b"\x0d" + d[3:], ["type 0x0D", "float32", "0x08"]),
    (lambda d: d[:3] + b"\x02" + d[4:], ["2 dimensions", "0x00000803"]),
    (lambda d: d[:-1], ["truncated", "10 bytes", "only 9"]),
    (lambda d: d + b"\x00\x00", ["2 trailing bytes"]),
    (lambda d: d[:6], ["truncated IDX header"]),
    (lambda d: d[:3], ["too short"]),
    (lambda d: d[:4] + (11).to_bytes(4, "big") + d[8:], ["11 bytes", "only 10"]),
])
def test_idx_errors_name_the_file(mutate, words):
    data = mutate(write_idx(np.arange(10, dtype=np.uint8)))
    with pytest.raises(DataError) as info:
        parse_idx(data, source="/some/where/labels-file")
    message = str(info.value)
    assert "/some/where/labels-file" in message
    for word in words:
        assert word in message


def test_write_idx_rejects_other_dtypes_and_ranks():
    with pytest.raises(ValueError):
        write_idx(np.zeros(3, dtype=np.int32))
    with pytest.raises(ValueError):
        write_idx(np.zeros((2, 2), dtype=np.uint8))


def test_corrupt_or_truncated_gzip_names_the_file(tmp_path):
    good = gzip.compress(write_idx(np.arange(5000, dtype=np.uint8) % 10))
    for name, data in [("trunc.gz", good[: len(good) // 2]), ("plain.gz", b"not gzip at all"),
                       ("flipped.gz", good[:20] + bytes([good[20] ^ 0xFF]) + good[21:])]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match="cannot decompress") as info:
            read_maybe_gzip(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)


def test_check_split_counts_shapes_and_labels():
    images, labels = np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 9, 3], np.uint8)
    kwargs = dict(image_shape=(28, 28), num_classes=10, sources=("IMG", "LAB"))
    check_split(images, labels, count=4, **kwargs)
    with pytest.raises(DataError, match=r"IMG.*\(4, 28, 28\).*expected \(5, 28, 28\)"):
        check_split(images, labels, count=5, **kwargs)
    with pytest.raises(DataError, match="IMG.*expected"):
        check_split(np.zeros((4, 28, 27), np.uint8), labels, count=4, **kwargs)
    with pytest.raises(DataError, match="LAB: holds 3 labels, expected 4"):
        check_split(images, labels[:3], count=4, **kwargs)
    with pytest.raises(DataError, match="LAB: label value 10 out of range"):
        check_split(images, np.array([0, 1, 10, 3], np.uint8), count=4, **kwargs)


# ----------------------------------------------------------------------------- registry

def test_registry_names_and_unknown_name():
    assert {"fashion-mnist", "mnist"} <= set(list_datasets())
    assert DATASETS.get("MNIST") is MNIST and DATASETS.get("fashion_mnist").name == "fashion-mnist"
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'; known: .*mnist"):
        load_dataset("imagenet")


FASHION_README = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "README.md"


def test_fashion_digests_are_those_of_the_shared_readme():
    text = FASHION_README.read_text()
    section = text[text.index("## fashion-mnist/"):]
    spec = DATASETS.get("fashion-mnist")
    assert all(f.sha256 in section for f in spec.files.values())


def test_real_fashion_mnist_loads_in_either_archive_form(fashion_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    ds = load_dataset("fashion-mnist", fashion_dir, download=False, progress=False)
    assert ds.train_images.shape == (60000, 1, 28, 28) and ds.test_images.shape == (10000, 1, 28, 28)
    assert ds.train_labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert torch.bincount(ds.test_labels).tolist() == [1000] * 10 and ds.classes[9] == "Ankle boot"
    # the same content re-compressed another way (as Zalando's or a distribution's archives): still verified
    folder = tmp_path / "recompressed"
    folder.mkdir()
    for path in fashion_dir.glob("*.gz"):
        (folder / path.name).write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1, mtime=7))
    again = load_dataset("fashion-mnist", folder, download=False, progress=False)
    assert torch.equal(again.test_images, ds.test_images)


# ----------------------------------------------------------------------------- real MNIST

def test_mnist_shapes_dtypes_and_labels(mnist):
    assert mnist.name == "mnist" and (mnist.mean, mnist.std) == ((0.1307,), (0.3081,))
    assert mnist.train_images.shape == (60000, 1, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10000, 1, 28, 28) and mnist.test_images.dtype == torch.uint8
    assert mnist.input_shape == (1, 28, 28) and mnist.num_classes == 10
    assert mnist.train_labels.shape == (60000,) and mnist.train_labels.dtype == torch.int64
    assert mnist.test_labels.shape == (10000,) and mnist.test_labels.dtype == torch.int64
    assert mnist.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test_labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert torch.bincount(mnist.train_labels).tolist()[1] == 6742  # the well-known class count
    assert int(mnist.train_images.max()) == 255


def test_mnist_split_normalisation(mnist):
    x, y = mnist.split("train")
    assert x.shape == (60000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-3
    expected = (mnist.train_images[5, 0].float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(x[5, 0], expected)
    xt, yt = mnist.split("test")
    assert xt.shape == (10000, 1, 28, 28) and torch.equal(yt, mnist.test_labels)
    yt[0] = 3  # split() returns a copy of the labels
    assert mnist.test_labels[0] == 7
    with pytest.raises(ConfigError, match="'val'.*'train' or 'test'"):
        mnist.split("val")


@pytest.mark.parametrize("layout", ["direct", "subfolder"])
@pytest.mark.parametrize("how", ["data_dir", "env"])
def test_both_folder_layouts(mnist_files, tmp_path, monkeypatch, layout, how):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    root = tmp_path / "d"
    link_mnist(mnist_files, root / "mnist" if layout == "subfolder" else root)
    if how == "env":
        monkeypatch.setenv(DATA_ENV_VAR, str(root))
    paths = find_files(MNIST, root if how == "data_dir" else None)
    base = root / "mnist" if layout == "subfolder" else root
    assert paths == {role: base / f"{MNIST.files[role].filename}.gz" for role in paths}


def test_raw_and_gz_files_load_identically(mnist, mnist_files, tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    folder = link_mnist(mnist_files, tmp_path / "mixed", skip=["t10k-labels-idx1-ubyte"])
    raw = gzip.decompress((mnist_files / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (folder / "t10k-labels-idx1-ubyte").write_bytes(raw)
    assert find_files(MNIST, folder)["test_labels"] == folder / "t10k-labels-idx1-ubyte"
    ds = load_dataset("mnist", tmp_path / "mixed", download=False, progress=False)
    for role in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(ds, role), getattr(mnist, role))


def test_tampered_mnist_file_is_an_error_not_skipped(mnist_files, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(mnist_files))  # a good copy exists further down the list
    folder = link_mnist(mnist_files, tmp_path / "bad", skip=["t10k-labels-idx1-ubyte"])
    raw = bytearray(gzip.decompress((mnist_files / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    bad = folder / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ChecksumError) as info:
        load_dataset("mnist", folder, download=False, progress=False)
    message = str(info.value)
    assert str(bad) in message
    assert MNIST.files["test_labels"].sha256 in message
    assert hashlib.sha256(bytes(raw)).hexdigest() in message
    assert "delete it" in message and "download" in message


# ----------------------------------------------------------------------------- fake data sets

def test_fake_local_load_raw_and_any_archive(fake, tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    fake.check(load_from_spec(fake.spec, fake.write(tmp_path / "a"), download=False))
    (tmp_path / "a" / (fake.filename("test_labels") + ".gz")).write_bytes(
        gzip.compress(fake.raw["test_labels"], mtime=1, compresslevel=2))  # same content, another archive
    fake.check(load_from_spec(fake.spec, tmp_path / "a", download=False))
    fake.check(load_from_spec(fake.spec, fake.write(tmp_path / "c", raw=True), download=False))


def test_a_labels_file_in_the_place_of_images_and_back_is_named(fake, tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    swapped = FakeData()
    swapped.raw["test_images"], swapped.raw["test_labels"] = swapped.raw["test_labels"], swapped.raw["test_images"]
    files = dict(swapped.spec.files)
    for role in ("test_images", "test_labels"):
        files[role] = FileSpec(files[role].filename, hashlib.sha256(swapped.raw[role]).hexdigest())
    spec = DatasetSpec(**{**swapped.spec.__dict__, "files": files})
    folder = tmp_path / "swap"
    folder.mkdir()
    for role, data in swapped.raw.items():
        (folder / spec.files[role].filename).write_bytes(data)
    with pytest.raises(DataError, match="fake-test-images: holds a 1-D IDX array.*a labels file in the place"):
        load_from_spec(spec, folder, download=False)


def test_unreadable_or_folder_data_files_are_named_not_reported_missing(fake, tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    folder = fake.write(tmp_path / "f")
    target = folder / (fake.filename("test_labels") + ".gz")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == target else real_access(p, mode))
    with pytest.raises(DataError, match=f"{target}.*cannot be read"):
        load_from_spec(fake.spec, folder, download=False)
    monkeypatch.undo()
    target.unlink()
    target.mkdir()
    with pytest.raises(DataError, match=f"{target} is a folder"):
        load_from_spec(fake.spec, folder, download=False)


def test_a_user_named_data_folder_that_does_not_exist_is_not_created(fake, server, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "typo"))
    with pytest.raises(DataError, match=r"\$PRUNEKIT_DATA is .*typo, which does not exist"):
        load_from_spec(fake.spec, mirrors=[server.base + "/good/"], progress=False)
    monkeypatch.delenv(DATA_ENV_VAR)
    with pytest.raises(DataError, match=r"data_dir \(--data-dir\) is .*nope, which does not exist"):
        load_from_spec(fake.spec, tmp_path / "nope", mirrors=[server.base + "/good/"], progress=False)
    assert not (tmp_path / "typo").exists() and not (tmp_path / "nope").exists()


def test_wrong_counts_in_files_are_reported(fake, tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    folder = fake.write(tmp_path / "d")
    spec = DatasetSpec(**{**fake.spec.__dict__, "n_train": 21})
    with pytest.raises(DataError, match=r"fake-train-images.*expected \(21, 28, 28\)"):
        load_from_spec(spec, folder, download=False)


def test_download_from_local_http_server(fake, server, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    target = tmp_path / "target"
    target.mkdir()
    ds = load_from_spec(fake.spec, target, mirrors=[server.base + "/good/"], progress=True)
    fake.check(ds)
    assert sorted(p.name for p in target.iterdir()) == sorted(
        fake.filename(role) + ".gz" for role in fake.arrays)
    assert (target / (fake.filename("train_images") + ".gz")).read_bytes() == \
        fake.gz["train_images"]
    assert fake.filename("train_images") in capsys.readouterr().err  # the progress bar
    server.requests.clear()
    fake.check(load_from_spec(fake.spec, target, mirrors=[server.base + "/good/"]))
    assert server.requests == []  # found locally, nothing downloaded again


def test_corrupt_mirror_rejected_next_mirror_used(fake, server, tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    target = tmp_path / "t"
    target.mkdir()
    mirrors = [server.base + "/bad", server.base + "/missing/", server.base + "/good/"]
    fake.check(load_from_spec(fake.spec, target, mirrors=mirrors, progress=False))
    name = fake.filename("train_labels") + ".gz"
    assert [r for r in server.requests if r.endswith(name)] == [
        f"/bad/{name}", f"/missing/{name}", f"/good/{name}"]
    assert sorted(p.name for p in target.iterdir()) == sorted(
        fake.filename(role) + ".gz" for role in fake.arrays)


def test_corrupt_download_leaves_nothing_behind(fake, server, tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    target = tmp_path / "t"
    target.mkdir()
    with pytest.raises(DataError) as info:
        load_from_spec(fake.spec, target, mirrors=[server.base + "/bad/"], progress=False)
    assert f"{server.base}/bad/{fake.filename('train_images')}.gz" in str(info.value)
    assert "sha256" in str(info.value) and "rejected" in str(info.value)
    assert ".tmp-" not in str(info.value)  # names the URL, not a deleted temporary file
    assert list(target.iterdir()) == []  # neither the file nor a temporary file


def test_truncated_and_slow_downloads_fail_cleanly(fake, server, tmp_path):
    dest = tmp_path / "t" / "f.gz"
    with pytest.raises(DataError, match="incomplete|IncompleteRead"):
        download_file(f"{server.base}/short/{fake.filename('test_labels')}.gz", dest,
                      progress=False)
    with pytest.raises(OSError, match="timed out"):
        download_file(f"{server.base}/slow/{fake.filename('test_labels')}.gz", dest,
                      progress=False, timeout=0.2)
    assert list(dest.parent.iterdir()) == []


def test_interrupted_download_removes_temp_file(fake, server, tmp_path):
    def interrupt(tmp, url):
        assert tmp.parent == tmp_path and tmp.name.endswith(".gz") and tmp.stat().st_size
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download_file(f"{server.base}/good/{fake.filename('test_labels')}.gz",
                      tmp_path / "f.gz", verify=interrupt, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_file_url_mirror_and_partial_local(fake, tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    mirror = fake.write(tmp_path / "mirror")
    target = fake.write(tmp_path / "target", roles=["train_images"], raw=True)
    fake.check(load_from_spec(fake.spec, target, mirrors=[mirror.as_uri()], progress=False))
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [fake.filename("train_images")] +
        [fake.filename(r) + ".gz" for r in ("train_labels", "test_images", "test_labels")])


def test_download_target_and_mirror_env(fake, server, tmp_path, monkeypatch):
    monkeypatch.setenv(MIRRORS_ENV_VAR, f"{server.base}/missing/, {server.base}/good/")
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "env"))
    (tmp_path / "env").mkdir()
    fake.check(load_from_spec(fake.spec, progress=False))  # downloads into $PRUNEKIT_DATA
    assert len(list((tmp_path / "env").glob("*.gz"))) == 4
    monkeypatch.delenv(DATA_ENV_VAR)
    fake.check(load_from_spec(fake.spec, progress=False))  # else into the cache folder
    assert len(list((tmp_path / "xdg-cache" / "prunekit" / "fake").glob("*.gz"))) == 4


def test_all_mirrors_fail_lists_folders_and_urls(fake, server, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "env"))
    fake.write(tmp_path / "env", roles=["train_images"])  # found there; the rest is missing
    bad_file = (tmp_path / "nowhere").as_uri() + "/"
    mirrors = [server.base + "/missing/", bad_file]
    (tmp_path / "dd").mkdir()
    with pytest.raises(DataError) as info:
        load_from_spec(fake.spec, tmp_path / "dd", mirrors=mirrors, progress=False)
    message = str(info.value)
    folders = search_folders("fake", tmp_path / "dd")
    assert folders[:4] == [tmp_path / "dd", tmp_path / "dd" / "fake",
                           tmp_path / "env", tmp_path / "env" / "fake"]
    assert folders[4] == tmp_path / "xdg-cache" / "prunekit" / "fake"
    for folder in folders:
        assert f"  {folder}\n" in message
    missing = fake.filename("train_labels") + ".gz"
    assert f"{server.base}/missing/{missing}: HTTP Error 404" in message
    assert f"{bad_file}{missing}: <urlopen error" in message
    assert "--data-dir" in message and DATA_ENV_VAR in message
    assert fake.filename("train_images") + "[.gz]" not in message.splitlines()[0]
    assert list((tmp_path / "dd").iterdir()) == []
    with pytest.raises(DataError, match="No download attempted") as info:
        load_from_spec(fake.spec, tmp_path / "dd", download=False)
    assert server.base not in str(info.value)
