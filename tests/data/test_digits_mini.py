"""digits-mini: deterministic bytes, recorded checksum, manifest content (issue 3, item 1)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ghuda.data import digits_mini
from ghuda.data.cli import main as data_main


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    digits_mini.build(a, seed=0)
    digits_mini.build(b, seed=0)
    return a, b


@pytest.mark.slow
def test_generation_twice_gives_identical_bytes(two_builds):
    a, b = two_builds
    for name in [digits_mini.MANIFEST] + [f"{d}.npz" for d in digits_mini.DOMAINS]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_recorded_checksum_matches(two_builds):
    recorded = digits_mini.expected()
    assert recorded["generator_version"] == digits_mini.GENERATOR_VERSION
    assert digits_mini.manifest_sha256(two_builds[0]) == recorded["manifest_sha256"]


def test_manifest_counts_balance_and_split(two_builds):
    root = two_builds[0]
    manifest = json.loads((root / digits_mini.MANIFEST).read_text())
    assert manifest["seed"] == 0
    for domain in digits_mini.DOMAINS:
        entry = manifest["domains"][domain]
        images, labels = digits_mini.load_arrays(root, domain)
        assert images.shape == (entry["count"], 32, 32, 3)
        assert images.dtype == np.uint8
        assert np.bincount(labels, minlength=10).tolist() == entry["class_counts"]
        val = np.asarray(entry["split"]["val_indices"])
        assert len(np.unique(val)) == val.size == entry["split"]["val_count"]
        # stratified 10 %: every class keeps round(0.1 * n_c) validation images
        for c, n_c in enumerate(entry["class_counts"]):
            assert (labels[val] == c).sum() == round(0.1 * n_c)
    assert manifest["domains"]["synth"]["count"] == 3000
    assert manifest["domains"]["optdigits"]["count"] == 1797
    assert manifest["domains"]["mnist"]["count"] == 5000
    digits_mini.verify(root)


def test_domains_differ_and_m_variant_is_blended(two_builds):
    root = two_builds[0]
    plain, _ = digits_mini.load_arrays(root, "optdigits")
    blended, _ = digits_mini.load_arrays(root, "optdigits_m")
    assert (plain[..., 0] == plain[..., 1]).all()  # grey
    assert not (blended[..., 0] == blended[..., 1]).all()  # coloured backgrounds
    # |patch - digit|: where the digit is black (0) the pixel is the photo patch itself
    assert blended.mean() > plain.mean()


def test_other_seed_gives_other_images():
    a, _ = digits_mini.generate_domain("optdigits_m", 0)
    b, _ = digits_mini.generate_domain("optdigits_m", 1)
    assert not np.array_equal(a, b)
    assert np.array_equal(a, digits_mini.generate_domain("optdigits_m", 0)[0])


def test_cli_build_verify_and_tampering(tmp_path, capsys):
    out = tmp_path / "digits_mini"
    assert data_main(["build", "digits-mini", "--out", str(out), "--seed", "2"]) == 0
    assert "synth" in capsys.readouterr().out
    assert data_main(["verify", "digits-mini", "--root", str(tmp_path)]) == 0
    target = out / "optdigits.npz"
    blob = bytearray(target.read_bytes())
    blob[-1] ^= 0xFF
    target.write_bytes(bytes(blob))
    assert data_main(["verify", "digits-mini", "--root", str(tmp_path)]) == 1
    assert re.search(r"checksum mismatch for .*optdigits\.npz", capsys.readouterr().err)
    target.unlink()
    with pytest.raises(FileNotFoundError, match=r"optdigits\.npz is missing"):
        digits_mini.verify(out)


def test_cli_build_rejects_other_datasets(capsys):
    assert data_main(["build", "office31"]) == 2
    assert "ghuda data fetch" in capsys.readouterr().err
