"""EditableArray: numpy semantics over a zarr array, edits in an overlay, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_omezarr_x.errors import RegionTooLargeError
from napari_omezarr_x.write.editable import EditableArray

SHAPE = (4, 37, 53)
CHUNKS = (1, 8, 16)


@pytest.fixture
def stored(tmp_path):
    """A chunked zarr array with random labels, and the same values in numpy."""
    rng = np.random.default_rng(1)
    data = rng.integers(0, 5, SHAPE).astype(np.uint32)
    data[:, 20:, :] = 0  # a background part left unstored
    arr = zarr.create_array(
        tmp_path / "a.zarr", shape=SHAPE, chunks=CHUNKS, dtype="uint32", fill_value=0
    )
    arr[:] = data
    return zarr.open_array(tmp_path / "a.zarr", mode="r"), data


GET_KEYS = [
    (1, 2, 3),
    (-1, -2, -3),
    (slice(None),),
    (2,),
    (Ellipsis, 5),
    (1, Ellipsis),
    (slice(1, 3), slice(5, 30), slice(10, 50)),
    (slice(None, None, 2), slice(3, 33, 3), slice(50, 1, -4)),
    (slice(3, 3), slice(None), slice(None)),
    (0, slice(0, 8), slice(0, 16)),
    (np.array([0, 3, 3, 1]), np.array([5, 36, 36, 0]), np.array([52, 0, 7, 20])),
    (2, np.array([[1, 2], [30, 31]]), np.array([[1, 50], [0, 52]])),
    (slice(None), np.array([4, 9, 33]), slice(2, 40)),
    (1, [3, 4, 5], [6, 7, 8]),
]


@pytest.mark.parametrize("key", GET_KEYS)
def test_reads_match_numpy(stored, key):
    arr, data = stored
    view = EditableArray(arr, "a")
    np.testing.assert_array_equal(view[key], data[key])
    view[(0, slice(0, 20), slice(0, 40))] = 9  # edited chunks must read the same way too
    data = data.copy()
    data[0, 0:20, 0:40] = 9
    np.testing.assert_array_equal(view[key], data[key])


SET_CASES = [
    ((slice(1, 3), slice(5, 30), slice(10, 50)), 7),
    ((slice(None), slice(None), slice(None)), 0),
    ((2, 3, 4), 11),
    ((slice(None, None, 2), slice(3, 33, 3), slice(50, 1, -4)), 6),
    ((np.array([0, 3, 3, 1]), np.array([5, 36, 20, 0]), np.array([52, 0, 7, 20])), 8),
    ((np.array([0, 3]), np.array([5, 36]), np.array([52, 0])), np.array([12, 13])),
    ((1, slice(0, 8), slice(0, 16)), np.arange(128, dtype=np.uint32).reshape(8, 16)),
    ((slice(None), np.array([4, 9, 33]), slice(2, 40)), 3),
    ((np.ones(SHAPE, dtype=bool) & (np.arange(53) % 7 == 0),), 5),
]


@pytest.mark.parametrize(("key", "value"), SET_CASES)
def test_writes_match_numpy_and_leave_the_store_alone(stored, key, value):
    arr, data = stored
    before = arr[:]
    view = EditableArray(arr, "a")
    expected = data.copy()
    expected[key] = value
    view[key] = value
    np.testing.assert_array_equal(view[:], expected)
    np.testing.assert_array_equal(np.asarray(view), expected)
    np.testing.assert_array_equal(arr[:], before)
    assert view.has_edits
    changed = {
        tuple(i // c for i, c in zip(idx, CHUNKS, strict=True))
        for idx in zip(*np.nonzero(expected != data), strict=True)
    }
    assert changed <= set(view.edited_chunks())


def test_reads_return_copies(stored):
    arr, data = stored
    view = EditableArray(arr, "a")
    region = view[0, 0:4, 0:4]
    region[:] = 99  # the caller's copy, not the cache or the overlay
    np.testing.assert_array_equal(view[0, 0:4, 0:4], data[0, 0:4, 0:4])
    view[0, 0:4, 0:4] = 3
    region = view[0, 0:4, 0:4]
    region[:] = 99
    assert (view[0, 0:4, 0:4] == 3).all()


def test_spill_keeps_memory_bounded_and_content_exact(stored):
    arr, data = stored
    chunk_bytes = np.prod(CHUNKS) * 4
    view = EditableArray(arr, "a", memory_budget=3 * chunk_bytes)
    expected = data.copy()
    rng = np.random.default_rng(2)
    for _ in range(40):
        z, y, x = rng.integers(0, 4), rng.integers(0, 37), rng.integers(0, 53)
        value = int(rng.integers(1, 100))
        view[z, y : y + 5, x : x + 9] = value
        expected[z, y : y + 5, x : x + 9] = value
        assert view.edited_bytes <= 4 * chunk_bytes
    assert view.edited_count > 4  # most edited chunks live in the spill
    np.testing.assert_array_equal(view[:], expected)
    for chunk in view.edited_chunks():
        box = view.chunk_box(chunk)
        np.testing.assert_array_equal(
            view.edited_chunk(chunk), expected[tuple(slice(lo, hi) for lo, hi in box)]
        )
    spill = view._spill_dir
    assert spill is not None
    assert spill.exists()
    view.discard()
    assert not view.has_edits
    assert not spill.exists()
    np.testing.assert_array_equal(view[:], data)


def test_huge_reads_are_refused_with_a_clear_error(stored):
    arr, _ = stored
    view = EditableArray(arr, "labels/x", max_read_bytes=1000)
    assert view[0, 0:8, 0:16].shape == (8, 16)  # one chunk: always fine
    with pytest.raises(RegionTooLargeError, match=r"labels/x: reading .* at once"):
        view[:]


def test_listeners_hear_every_change(stored):
    arr, _ = stored
    view = EditableArray(arr, "a")
    heard = []
    view.listeners.append(lambda a: heard.append(a.has_edits))
    view[0, 0, 0] = 1
    view.discard()
    assert heard == [True, False]


def test_bad_indices_raise_index_error(stored):
    arr, _ = stored
    view = EditableArray(arr, "a")
    with pytest.raises(IndexError):
        view[4, 0, 0]
    with pytest.raises(IndexError):
        view[0, 0, 0, 0]
    with pytest.raises(IndexError):
        view[np.array([0]), np.array([0]), np.array([53])] = 1
    with pytest.raises(IndexError):
        view[None]
