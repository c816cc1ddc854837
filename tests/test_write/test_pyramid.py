"""Pyramid planning and downsampling: factors, shapes, exact block means, modes."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest

from napari_omezarr_x.write import pyramid

SPACE3 = ["space", "space", "space"]


def test_anisotropic_z_is_not_halved_until_xy_catches_up():
    # z 2 um, xy 0.2 um: xy halves 0.4, 0.8, 1.6, 3.2; z joins once 2*2 <= xy.
    factors = pyramid.plan_factors((64, 4096, 4096), SPACE3, (2.0, 0.2, 0.2), levels=7)
    assert [f[0] for f in factors] == [1, 1, 1, 1, 1, 2, 4]
    assert [f[1] for f in factors] == [1, 2, 4, 8, 16, 32, 64]
    assert all(f[1] == f[2] for f in factors)


def test_time_and_channel_are_never_halved():
    factors = pyramid.plan_factors(
        (3, 2, 64, 512, 512), ["time", "channel", *SPACE3], None, (1, 1, 1, 64, 64)
    )
    assert all(f[0] == 1 and f[1] == 1 for f in factors)
    assert factors[-1][2:] == (8, 8, 8)


def test_levels_stop_when_a_plane_fits_in_one_chunk():
    factors = pyramid.plan_factors((10, 1000, 600), SPACE3, None, (1, 256, 256))
    shapes = pyramid.level_shapes((10, 1000, 600), factors)
    assert shapes[-1][1] <= 256
    assert shapes[-1][2] <= 256
    assert shapes[-2][1] > 256
    assert shapes == [(10, 1000, 600), (5, 500, 300), (3, 250, 150)]


def test_requested_level_count_and_length_one_axes():
    factors = pyramid.plan_factors((1, 64, 64), SPACE3, None, levels=4)
    assert factors == [(1, 1, 1), (1, 2, 2), (1, 4, 4), (1, 8, 8)]
    assert pyramid.plan_factors((4, 4), ["space", "space"], levels=10)[-1] == (4, 4)


def test_default_chunks_are_plane_tiles():
    assert pyramid.default_chunks((2, 64, 2048, 2048), "uint16", ["channel", *SPACE3]) == (
        1,
        1,
        512,
        512,
    )
    assert pyramid.default_chunks((100, 300), "float64", ["space", "space"]) == (100, 256)


def _reference_mean(x: np.ndarray, step: tuple[int, ...]) -> np.ndarray:
    """Exact mean of edge-padded 2-blocks in Python integers/floats."""
    pad = [(0, n % 2 if s == 2 else 0) for n, s in zip(x.shape, step, strict=True)]
    xp = np.pad(x, pad, mode="edge").astype(object)
    out_shape = tuple(-(-n // s) for n, s in zip(x.shape, step, strict=True))
    out = np.empty(out_shape, dtype=object)
    count = 2 ** sum(s == 2 for s in step)
    for idx in itertools.product(*(range(n) for n in out_shape)):
        sl = tuple(slice(i * s, i * s + s) for i, s in zip(idx, step, strict=True))
        total = xp[sl].sum()
        if x.dtype.kind in "iu":
            out[idx] = (total * 2 + count) // (2 * count)
        else:
            out[idx] = float(total) / count
    return out.astype(x.dtype)


@pytest.mark.parametrize(
    "dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "uint64", "float32"]
)
def test_block_mean_is_exact_rounded_and_never_overflows(dtype):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else np.finfo(dtype)
    lo, hi = (int(info.min), int(info.max)) if np.dtype(dtype).kind in "iu" else (-1e3, 1e3)
    x = rng.uniform(lo, hi, (5, 7, 6)).astype(dtype)
    x[:2, :2, :2] = info.max  # a block of maxima must stay at the maximum
    out = pyramid.downsample_block(x, (2, 2, 2), "mean")
    assert out.dtype == x.dtype
    assert out.shape == (3, 4, 3)
    assert out[0, 0, 0] == info.max
    np.testing.assert_array_equal(out, _reference_mean(x, (2, 2, 2)))


@pytest.mark.parametrize(
    ("shape", "step"),
    [
        ((9, 6, 10), (2, 2, 2)),  # slabs along a halved axis of odd length
        ((5, 8, 10), (1, 2, 2)),  # along an axis that is not halved
        ((2, 7, 12), (1, 2, 2)),  # an outer axis of length 2 is passed over
        ((1, 64, 8, 8), (1, 2, 2, 2)),
    ],
)
@pytest.mark.parametrize("dtype", ["uint16", "int32", "uint64", "float32"])
def test_block_mean_in_slabs_equals_the_whole_block_mean(monkeypatch, shape, step, dtype):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 1000, shape).astype(dtype)
    whole = pyramid.downsample_block(x, step, "mean")
    monkeypatch.setattr(pyramid, "SLAB_BYTES", 4 * x.itemsize * x.shape[-1])
    slabs = pyramid.downsample_block(x, step, "mean")
    assert slabs.dtype == x.dtype
    np.testing.assert_array_equal(slabs, whole)
    np.testing.assert_array_equal(slabs, _reference_mean(x, step))


def test_mean_rounds_halves_up():
    x = np.array([[1, 2], [1, 2]], dtype=np.uint8)
    assert pyramid.downsample_block(x, (2, 2), "mean")[0, 0] == 2
    assert pyramid.downsample_block(np.array([[0, 1], [0, 0]], np.uint8), (2, 2), "mean") == 0


def test_mode_picks_majority_and_ties_go_to_top_left():
    x = np.array([[5, 7, 1, 2], [7, 7, 3, 4]], dtype=np.uint32)
    out = pyramid.downsample_block(x, (2, 2), "mode")
    np.testing.assert_array_equal(out, [[7, 1]])
    nearest = pyramid.downsample_block(x, (2, 2), "nearest")
    np.testing.assert_array_equal(nearest, [[5, 1]])


def test_labels_never_gain_values_absent_from_input():
    rng = np.random.default_rng(3)
    x = rng.choice(np.array([0, 3, 9, 1000], dtype=np.int32), size=(9, 11, 13))
    for method in ("mode", "nearest"):
        out = pyramid.downsample_block(x, (2, 2, 2), method)
        assert out.shape == (5, 6, 7)
        assert set(np.unique(out)) <= {0, 3, 9, 1000}


def test_build_levels_matches_numpy_and_aligns_to_write_units():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 60000, (2, 9, 70, 90), dtype=np.uint16)
    types = ["channel", *SPACE3]
    factors = pyramid.plan_factors(x.shape, types, None, (1, 1, 16, 16), levels=4)
    shapes = pyramid.level_shapes(x.shape, factors)
    units = [tuple(min(c, n) for c, n in zip((1, 2, 16, 16), s, strict=True)) for s in shapes]
    blocks = pyramid.level0_blocks(x.shape, x.dtype, units[0], factors, block_bytes=4096)
    levels = pyramid.build_levels(da.from_array(x, chunks=blocks), factors, "mean", units)
    expected = x
    for k, level in enumerate(levels):
        if k:
            step = tuple(f // p for f, p in zip(factors[k], factors[k - 1], strict=True))
            expected = pyramid.downsample_block(expected, step, "mean")
        np.testing.assert_array_equal(level.compute(), expected)
        for axis_chunks, unit in zip(level.chunks, units[k], strict=True):
            assert all(c % unit == 0 for c in axis_chunks[:-1])


def _reference_mode(x: np.ndarray, step: tuple[int, ...]) -> np.ndarray:
    """Most frequent value of each edge-padded block, ties to the first in C order."""
    pad = [(0, n % 2 if s == 2 else 0) for n, s in zip(x.shape, step, strict=True)]
    xp = np.pad(x, pad, mode="edge")
    out_shape = tuple(-(-n // s) for n, s in zip(x.shape, step, strict=True))
    out = np.empty(out_shape, dtype=x.dtype)
    for idx in itertools.product(*(range(n) for n in out_shape)):
        sl = tuple(slice(i * s, i * s + s) for i, s in zip(idx, step, strict=True))
        values = list(xp[sl].ravel())
        out[idx] = max(values, key=lambda v: (values.count(v), -values.index(v)))
    return out


@pytest.mark.parametrize("step", [(2, 2, 2), (1, 2, 2), (2, 1, 2), (2, 2, 1), (1, 1, 2)])
@pytest.mark.parametrize("dtype", ["uint8", "int32", "uint64"])
def test_mode_matches_reference_on_mixed_and_uniform_blocks(step, dtype):
    rng = np.random.default_rng(sum(step))
    x = rng.choice(np.array([0, 2, 7], dtype=dtype), size=(7, 10, 9), p=[0.6, 0.3, 0.1])
    x[:4, :4, :4] = 5  # uniform blocks next to mixed ones
    out = pyramid.downsample_block(x, step, "mode")
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, _reference_mode(x, step))


@pytest.mark.parametrize("step", [(2, 2, 1), (2, 2, 2)])
def test_mode_leaves_its_input_unchanged(step):
    # Top-left pixels outvoted by the rest; with length-2 halved axes the
    # top-left pixels form a contiguous slice of the input.
    x = np.full((2, 2, 2), 7, dtype=np.uint16)
    x[0, 0] = 1
    before = x.copy()
    out = pyramid.downsample_block(x, step, "mode")
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(out, _reference_mode(before, step))
