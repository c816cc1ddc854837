"""Saving to an object store (a real S3 server on localhost): what is written, what
a save over an existing store does, labels, channel settings, refusals, and saves
killed at random moments that must leave the old image readable pixel for pixel."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest

from napari_omezarr_x import omero
from napari_omezarr_x.errors import ReadOnlyStoreError, StoreExistsError
from napari_omezarr_x.model import Channel
from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.write import ImageSpec, LabelsSpec, add_labels, write_image, write_store
from s3_helpers import PRIVATE, PUBLIC

VERSIONS = ["0.4", "0.5"]


def _image(seed: int, shape=(2, 96, 80)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, size=shape, dtype=np.uint16)


def _keys(server, url: str) -> list[str]:
    bucket, prefix = url[len("s3://") :].split("/", 1)
    return [k[len(prefix) + 1 :] for k in server.keys(bucket, prefix)]


def _referenced(url: str) -> set[str]:
    """Prefixes of every array the store's metadata references (images and labels)."""
    out = set()
    for image in read_ome_zarr(url):
        for im in [image, *image.labels]:
            out |= {"/".join(p for p in (im.path, lv) if p) for lv in im.level_paths}
    return out


def _assert_only_referenced(server, url: str) -> None:
    arrays = _referenced(url)
    for key in _keys(server, url):
        name = key.rsplit("/", 1)[-1]
        inside = any(key.startswith(f"{a}/") for a in arrays)
        assert inside or name in ("zarr.json", ".zattrs", ".zgroup"), key


@pytest.mark.parametrize("version", VERSIONS)
def test_write_overwrite_and_clean_up(s3_env, version):
    url = f"s3://{PRIVATE}/save/{version}/img.ome.zarr"
    first, second = _image(1), _image(2)
    calls = []
    assert (
        write_image(
            url, first, axes="cyx", version=version, progress=lambda d, t: calls.append((d, t))
        )
        == url
    )
    assert calls[-1][0] == calls[-1][1] > 0
    (image,) = read_ome_zarr(url)
    np.testing.assert_array_equal(image.levels[0].compute(), first)
    assert image.level_paths[0] == "0"
    assert image.version == version
    with pytest.raises(StoreExistsError, match="already exists"):
        write_image(url, second, axes="cyx", version=version)
    write_image(url, second, axes="cyx", version=version, overwrite=True)
    (image,) = read_ome_zarr(url)
    np.testing.assert_array_equal(image.levels[0].compute(), second)
    assert image.level_paths[0] != "0"  # fresh paths beside the old arrays
    _assert_only_referenced(s3_env, url)  # the old arrays are gone


def test_format_change_and_labels_replaced(s3_env):
    url = f"s3://{PRIVATE}/save/switch/img.ome.zarr"
    write_image(url, _image(3), axes="cyx", version="0.4")
    add_labels(url, (_image(4)[0] % 5).astype(np.uint8), "cells")
    write_image(url, _image(5), axes="cyx", version="0.5", overwrite=True)
    (image,) = read_ome_zarr(url)
    assert image.version == "0.5"
    assert image.labels == []
    assert not [k for k in _keys(s3_env, url) if k.endswith((".zattrs", ".zgroup"))]
    labels = (_image(6)[0] % 7).astype(np.uint8)
    add_labels(url, labels, "cells")
    add_labels(url, labels[::-1].copy(), "cells")  # replaced: fresh arrays, then its document
    add_labels(url, labels % 2, "mask")
    (image,) = read_ome_zarr(url)
    assert [lab.name for lab in image.labels] == ["cells", "mask"]
    np.testing.assert_array_equal(image.labels[0].levels[0].compute(), labels[::-1])
    _assert_only_referenced(s3_env, url)


def test_write_store_with_child_images_and_labels(s3_env):
    url = f"s3://{PRIVATE}/save/multi.ome.zarr"
    root, child = _image(7), _image(8, shape=(40, 30))
    labels = (root[0] % 3).astype(np.uint8)
    paths = write_store(
        url,
        [ImageSpec(root, axes="cyx", name="root"), ImageSpec(child, group="other", axes="yx")],
        [LabelsSpec(labels, "cells")],
    )
    assert paths == [url, f"{url}/other", f"{url}/labels/cells"]
    images = read_ome_zarr(url)
    assert [im.path for im in images] == ["", "other"]
    np.testing.assert_array_equal(images[1].levels[0].compute(), child)
    np.testing.assert_array_equal(images[0].labels[0].levels[0].compute(), labels)


def test_refuses_what_is_not_ome_zarr(s3_env, tmp_path):
    import zarr

    from napari_omezarr_x.storage import object_store

    plain = f"s3://{PRIVATE}/save/plain.zarr"
    zarr.create_array(zarr.storage.ObjectStore(object_store(plain)), shape=(4,), dtype="u1")
    with pytest.raises(StoreExistsError, match="not an OME-Zarr"):
        write_image(plain, _image(9), axes="cyx", overwrite=True)
    s3_env.client.put_object(Bucket=PRIVATE, Key="save/notes/readme.txt", Body=b"hello")
    with pytest.raises(StoreExistsError, match="not a zarr store"):
        write_image(f"s3://{PRIVATE}/save/notes", _image(9), axes="cyx", overwrite=True)
    for target, message in (
        ("https://example.org/img.ome.zarr", "http"),
        (str(tmp_path / "img.ozx"), "zipped"),
    ):
        with pytest.raises(ReadOnlyStoreError, match=message):
            write_image(target, _image(9), axes="cyx")


def test_channel_settings_saved_with_one_put(s3_env):
    url = f"s3://{PRIVATE}/save/omero.ome.zarr"
    write_image(url, _image(10), axes="cyx", channels=[Channel(label="a"), Channel(label="b")])
    before = {k for k in _keys(s3_env, url)}
    omero.check_writable(url)
    doc = omero.save_omero(url, "", [Channel(label="DNA", color="00FF00"), Channel(label="b")])
    assert doc == f"{url}/zarr.json"
    assert [c.label for c in omero.read_channels(url)] == ["DNA", "b"]
    assert omero.read_channels(url)[0].color == "00FF00"
    assert set(_keys(s3_env, url)) == before  # no probe or temporary object left


def test_public_store_is_read_only_anonymously(s3_server, s3_anon_env, tmp_path):
    folder = tmp_path / "pub.ome.zarr"
    write_image(folder, _image(11), axes="cyx", channels=[Channel(label="a"), Channel(label="b")])
    url = s3_server.upload(folder, PUBLIC, "save/pub.ome.zarr")
    s3_server.protect("save/pub.ome.zarr")
    assert [c.label for c in omero.read_channels(url)] == ["a", "b"]
    with pytest.raises(ReadOnlyStoreError, match="cannot be written"):
        omero.check_writable(url)
    with pytest.raises(OSError, match="access denied"):
        write_image(url, _image(12), axes="cyx", overwrite=True)
    (image,) = read_ome_zarr(url)
    np.testing.assert_array_equal(image.levels[0].compute(), _image(11))


SAVER = """
import sys
import numpy as np
from napari_omezarr_x.write import write_image
url, seed = sys.argv[1], int(sys.argv[2])
data = np.random.default_rng(seed).integers(0, 60000, size=(4, 512, 512), dtype=np.uint16)
print("saving", flush=True)
write_image(url, data, axes="zyx", chunks=(1, 128, 128), overwrite=True)
print("saved", flush=True)
"""


def _expected(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, size=(4, 512, 512), dtype=np.uint16)


def _start(url: str, seed: int, env: dict[str, str]) -> tuple[subprocess.Popen, float]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SAVER, url, str(seed)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "saving"
    return proc, time.monotonic()


def test_killed_saves_leave_the_old_image(s3_env):
    """A save over an existing store, killed at random moments, leaves the old image
    pixel-exact (or the new one complete, when it finished first); the next save
    cleans up what the killed ones left."""
    url = f"s3://{PRIVATE}/save/killed.ome.zarr"
    env = dict(os.environ)
    proc, started = _start(url, 0, env)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    duration = time.monotonic() - started
    current = 0
    rng = random.Random(11)
    outcomes = []
    for attempt in range(1, 7):
        proc, started = _start(url, attempt, env)
        time.sleep(rng.uniform(0.0, duration))
        proc.kill()
        proc.wait(timeout=30)
        (image,) = read_ome_zarr(url)
        pixels = image.levels[0].compute()
        if np.array_equal(pixels, _expected(attempt)):
            current = attempt
            outcomes.append("new")
        else:
            np.testing.assert_array_equal(pixels, _expected(current))
            outcomes.append("old")
        for level in image.levels[1:]:
            level.compute()  # every level of what opens is complete and readable
    assert "old" in outcomes, outcomes
    leftovers = len(_keys(s3_env, url))
    proc, _ = _start(url, 100, env)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    (image,) = read_ome_zarr(url)
    np.testing.assert_array_equal(image.levels[0].compute(), _expected(100))
    _assert_only_referenced(s3_env, url)
    assert len(_keys(s3_env, url)) <= leftovers
