"""Saving label edits in place: only what changed, equal to a full rewrite, crash-safe."""

from __future__ import annotations

import itertools
import os
import shutil
import stat
import zipfile
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

from label_edit_helpers import (
    CHUNKS,
    VERSIONS,
    assert_consistent,
    blobs,
    colors_of,
    digests,
    image_with_labels,
    levels,
)
from napari_omezarr_x.errors import MetadataError, ReadOnlyStoreError
from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.spec.validate import validate_store
from napari_omezarr_x.storage import journal
from napari_omezarr_x.write import add_labels, open_labels, update_labels, write_labels
from napari_omezarr_x.write.label_image import open_label_image

SHARDING = {"0.4": [None], "0.5": [None, True]}
CASES = [(v, s) for v in VERSIONS for s in SHARDING[v]]


def _ome(path: Path) -> dict:
    attrs = zarr.open_group(path, mode="r").attrs.asdict()
    return attrs.get("ome", attrs)


def edit(labels, cells: np.ndarray) -> np.ndarray:
    """A proofreading session: paint, erase an object, merge two, rewrite one unchanged."""
    edited = cells.copy()
    gone = int(np.unique(cells)[3])
    merged_from, merged_into = (int(v) for v in np.unique(cells)[5:7])
    operations = [
        ((slice(1, 3), slice(20, 70), slice(30, 45)), 99),
        (np.nonzero(cells == gone), 0),
        (np.nonzero(cells == merged_from), merged_into),
        ((slice(5, 6), slice(100, 140), slice(0, 60)), None),  # touched, not changed
    ]
    for key, value in operations:
        if value is None:
            labels[key] = np.array(labels[key])
            continue
        labels[key] = value
        edited[key] = value
    return edited


def changed_units(before: list[np.ndarray], after: list[np.ndarray], unit) -> set[str]:
    """Level/unit names whose content differs."""
    out = set()
    for k, (a, b) in enumerate(zip(before, after, strict=True)):
        grid = [range(-(-n // u)) for n, u in zip(a.shape, unit(k), strict=True)]
        for index in itertools.product(*grid):
            box = tuple(slice(i * u, (i + 1) * u) for i, u in zip(index, unit(k), strict=True))
            if not np.array_equal(a[box], b[box]):
                out.add(f"{k}:{index}")
    return out


@pytest.mark.parametrize(("version", "shards"), CASES)
def test_save_rewrites_only_what_changed_and_equals_a_full_rewrite(tmp_path, version, shards):
    store = tmp_path / "image.ome.zarr"
    cells, _ = image_with_labels(store, version, shards)
    label_path = store / "labels" / "cells"
    before_files = digests(store)
    before_levels = levels(label_path)

    labels = open_labels(label_path)
    assert labels.writable
    edited = edit(labels, cells)
    assert labels.has_edits
    report = labels.save(
        colors=colors_of(np.unique(edited)),
        properties=[{"label-value": 99, "area": int((edited == 99).sum())}],
    )
    assert not labels.has_edits
    np.testing.assert_array_equal(labels[:], edited)

    # The same edited array written from scratch: every level identical.
    reference = tmp_path / "reference.ome.zarr"
    image_with_labels(reference, version, shards)
    add_labels(reference, edited, "cells", chunks=CHUNKS, shards=shards, colors=colors_of([1]))
    after_levels = levels(label_path)
    for k, (ours, theirs) in enumerate(
        zip(after_levels, levels(reference / "labels" / "cells"), strict=True)
    ):
        assert ours.dtype == theirs.dtype
        assert np.array_equal(ours, theirs), f"level {k} differs from a full rewrite"
    assert_consistent(label_path)

    # Only the label image changed, and in it only the units whose content changed.
    after_files = digests(store)
    changed = {
        k
        for k in before_files.keys() | after_files.keys()
        if before_files.get(k) != after_files.get(k)
    }
    assert changed, "nothing was written"
    assert all(k.startswith("labels/cells/") for k in changed)
    image = open_label_image(label_path)
    expected = changed_units(before_levels, after_levels, lambda k: image.levels[k].unit)
    changed_chunks = {k for k in changed if not k.endswith(("zarr.json", ".zattrs"))}
    found = set()
    for key in changed_chunks:
        level, *rest = key[len("labels/cells/") :].split("/")
        coords = tuple(int(c) for c in (rest[1:] if rest[0] == "c" else rest))
        found.add(f"{level}:{coords}")
    assert found == expected
    assert sum(report.written) + sum(report.deleted) == len(expected)

    # image-label: the erased object's colour and properties are gone, 99 is listed.
    block = _ome(label_path)["image-label"]
    colors = {c["label-value"] for c in block["colors"]}
    props = {p["label-value"]: p for p in block["properties"]}
    present = set(np.unique(edited).tolist()) - {0}
    assert colors == present | (colors - set(np.unique(cells).tolist()))
    assert 99 in colors
    assert props[99]["area"] == int((edited == 99).sum())
    assert set(report.removed_values) == set(np.unique(cells).tolist()) - present - {0}
    assert validate_store(str(store)).valid


@pytest.mark.parametrize("version", VERSIONS)
def test_nearest_pyramids_stay_nearest(tmp_path, version):
    data = blobs((4, 90, 70), 12, seed=3)
    path = tmp_path / "labels.ome.zarr"
    write_labels(path, data, version=version, chunks=(1, 16, 16), downsample="nearest")
    edited = data.copy()
    edited[1:3, 10:50, 5:60] = 7
    report = update_labels(
        path, (slice(1, 3), slice(10, 50), slice(5, 60)), 7, downsample="nearest"
    )
    assert report.written[0] > 0
    reference = tmp_path / "reference.ome.zarr"
    write_labels(reference, edited, version=version, chunks=(1, 16, 16), downsample="nearest")
    for ours, theirs in zip(levels(path), levels(reference), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert_consistent(path, "nearest")


def test_a_large_sparse_label_image_changes_only_a_few_files(tmp_path):
    path = tmp_path / "big.ome.zarr"
    shape = (16, 2048, 2048)  # 256 MiB of uint32, stored as almost nothing
    write_labels(path, da.zeros(shape, dtype=np.uint32, chunks=(1, 1024, 2048)), version="0.5")
    seeded = np.zeros((1, 300, 300), dtype=np.uint32)
    seeded[0, 50:250, 50:250] = 5
    update_labels(path, (slice(8, 9), slice(1000, 1300), slice(1000, 1300)), seeded)
    before = digests(path)
    assert len(before) < 20
    assert sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) < 200_000

    labels = open_labels(path)
    yy, xx = np.mgrid[0:2048, 0:2048]
    stroke = (yy - 1200) ** 2 + ((xx - 600) / 4) ** 2 < 30**2  # a long brush stroke in one plane
    labels[(8, *np.nonzero(stroke))] = 12
    report = labels.save()
    after = digests(path)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    # Level 0 is tiled in 512 x 512 chunks: the stroke spans at most 2 x 2 of them, and
    # each coarser level has one chunk per plane above them.
    assert 1 <= report.written[0] <= 4
    assert len(changed) == report.files
    # Chunks of the levels, and the metadata: the new value 12 gets a colour.
    assert all(k.split("/")[0] in {"0", "1", "2", "3", "4"} for k in changed - {"zarr.json"})
    assert report.added_values == [12]
    colors = {c["label-value"] for c in _ome(path)["image-label"]["colors"]}
    assert 12 in colors
    expected = np.zeros(shape[1:], dtype=np.uint32)
    expected[1000:1300, 1000:1300] = seeded[0]
    expected[stroke] = 12
    np.testing.assert_array_equal(zarr.open_array(path / "0", mode="r")[8], expected)
    assert_consistent(path)


def test_zipped_and_read_only_stores_say_so(tmp_path):
    store = tmp_path / "image.ome.zarr"
    image_with_labels(store, "0.5", None)
    zipped = tmp_path / "image.ozx"
    with zipfile.ZipFile(zipped, "w") as archive:
        for f in store.rglob("*"):
            archive.write(f, f.relative_to(store).as_posix())
    labels = open_labels(f"{zipped}/labels/cells")
    assert labels.read_only_reason == "zipped stores are read-only"
    labels[0, 0:5, 0:5] = 3  # edits work in memory ...
    assert labels[0, 0, 0] == 3
    with pytest.raises(ReadOnlyStoreError, match="zipped stores are read-only"):
        labels.save()  # ... but cannot go back into the zip

    folder = store / "labels" / "cells"
    before = digests(store)
    mode = folder.stat().st_mode
    folder.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        labels = open_labels(folder)
        assert "read-only" in labels.read_only_reason
        labels[0, 0:5, 0:5] = 3
        with pytest.raises(ReadOnlyStoreError, match="read-only"):
            labels.save()
    finally:
        folder.chmod(mode)
    assert digests(store) == before


def test_pyramids_that_are_not_halvings_are_refused_before_writing(tmp_path):
    path = tmp_path / "odd.ome.zarr"
    write_labels(path, [np.ones((64, 64), np.uint8), np.ones((16, 16), np.uint8)])
    labels = open_labels(path)
    assert "not a halving" in labels.read_only_reason
    labels[0, 0] = 2
    before = digests(path)
    with pytest.raises(MetadataError, match="cannot be updated in place"):
        labels.save()
    assert digests(path) == before


class _Crash(Exception):
    pass


def _crash_after(monkeypatch, module, name: str, calls: int) -> None:
    real = getattr(module, name)
    count = {"n": 0}

    def fake(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise _Crash(f"simulated crash in {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, fake)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("completed_by", ["open_labels", "reader", "next save"])
def test_a_save_interrupted_after_its_commit_point_is_completed_next_time(
    tmp_path, monkeypatch, version, completed_by
):
    store = tmp_path / "image.ome.zarr"
    cells, _ = image_with_labels(store, version, None)
    folder = store / "labels" / "cells"
    later = open_labels(folder)  # another editor, open before the crash
    labels = open_labels(folder)
    edited = edit(labels, cells)
    corner = (5, slice(128, 150), slice(160, 170))  # a chunk the first save leaves alone
    assert np.array_equal(edited[corner], cells[corner])
    with monkeypatch.context() as patch:
        _crash_after(patch, journal.os, "replace", 3)  # the 4th rename "crashes"
        with pytest.raises(_Crash):
            labels.save()
    assert len(journal.pending(folder)) == 1
    report = validate_store(str(store))
    assert not report.valid
    assert any("interrupted save is pending" in issue.message for issue in report.errors)

    if completed_by == "open_labels":
        assert open_labels(folder).image.recovered == 1
    elif completed_by == "reader":
        (image,) = read_ome_zarr(str(store))
        assert [label.name for label in image.labels] == ["cells", "other"]
    else:
        later[corner] = 77  # saving other edits replays the journal first
        edited[corner] = 77
        later.save()
    assert journal.pending(folder) == []
    assert not any(p.name.startswith(journal.PREFIX) for p in folder.iterdir())
    np.testing.assert_array_equal(levels(folder)[0], edited)
    assert_consistent(folder)
    assert validate_store(str(store)).valid


def test_a_save_interrupted_before_its_commit_point_changes_nothing(tmp_path, monkeypatch):
    store = tmp_path / "image.ome.zarr"
    cells, _ = image_with_labels(store, "0.5", True)
    folder = store / "labels" / "cells"
    before = digests(store)
    labels = open_labels(folder)
    edit(labels, cells)
    _crash_after(monkeypatch, journal, "write_file", 0)  # dies writing the journal
    with pytest.raises(_Crash):
        labels.save()
    assert digests(store) == before
    assert labels.has_edits  # nothing was lost: the edits can be saved again
    monkeypatch.undo()
    labels.save()
    assert digests(store) != before
    assert_consistent(folder)


def test_abandoned_staging_folders_are_removed(tmp_path):
    store = tmp_path / "image.ome.zarr"
    image_with_labels(store, "0.5", None)
    folder = store / "labels" / "cells"
    dead = folder / f"{journal.PREFIX}999999999-abcd"
    (dead / "0" / "c").mkdir(parents=True)
    (dead / "0" / "c" / "junk").write_bytes(b"half a chunk")
    report = validate_store(str(store))
    assert any("unfinished" in w.message for w in report.warnings)
    open_labels(folder)
    assert not dead.exists()


def test_copying_a_label_image_elsewhere_keeps_its_edits(tmp_path):
    """Edits of a read-only store are saved to a new store by the ordinary writer."""
    store = tmp_path / "image.ome.zarr"
    cells, _ = image_with_labels(store, "0.5", None)
    labels = open_labels(store / "labels" / "cells")
    edited = edit(labels, cells)
    out = tmp_path / "copy.ome.zarr"
    write_labels(out, labels, chunks=CHUNKS)
    np.testing.assert_array_equal(levels(out)[0], edited)
    shutil.rmtree(out)
    assert os.path.exists(store)
