"""model.Image -> napari layer data tuples, without a viewer."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from napari.utils.colormaps import Colormap, ensure_colormap, label_colormap

from napari_omezarr_x._napari import image_layers as IL
from napari_omezarr_x._napari import label_layers as LL
from napari_omezarr_x._napari import layer_parts as LP
from napari_omezarr_x._napari import layers as L
from napari_omezarr_x.errors import NgffComplianceWarning
from napari_omezarr_x.model import Axis, Channel, Image, LabelMeta

TCZYX = (
    Axis("t", "time", "second"),
    Axis("c", "channel"),
    Axis("z", "space", "micrometer"),
    Axis("y", "space", "micrometer"),
    Axis("x", "space", "micrometer"),
)
KEYS = {"store", "path", "version", "channel_index", "channel", "image_name", "kind", "rdefs"}


class CountingArray:
    """An array-like that counts reads, to prove which levels are touched."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.reads = 0

    def __getitem__(self, key):
        self.reads += 1
        return self.data[key]


def counting(data: np.ndarray) -> tuple[da.Array, CountingArray]:
    source = CountingArray(data)
    meta = np.empty((0,) * data.ndim, data.dtype)
    return da.from_array(source, chunks=data.shape, meta=meta), source


def pyramid(shape=(1, 2, 3, 16, 16), dtype="uint16", levels=2):
    """Levels halving y/x; level i holds i*100 + (0..9) so levels differ."""
    arrays, sources = [], []
    for i in range(levels):
        s = (*shape[:-2], shape[-2] // 2**i, shape[-1] // 2**i)
        data = (np.arange(np.prod(s)) % 10 + i * 100).astype(dtype).reshape(s)
        arr, src = counting(data)
        arrays.append(arr)
        sources.append(src)
    return arrays, sources


def make_image(levels, axes=TCZYX, channels=(), name="cells", **kw) -> Image:
    n = len(axes)
    return Image(
        store=kw.pop("store", "/data/cells.ome.zarr"),
        path=kw.pop("path", ""),
        version=kw.pop("version", "0.4"),
        name=name,
        axes=axes,
        levels=levels,
        scale=kw.pop("scale", tuple(float(i + 1) for i in range(n))),
        translate=kw.pop("translate", tuple(float(10 * i) for i in range(n))),
        channels=list(channels),
        **kw,
    )


def window(start, end, lo=0, hi=65535):
    return {"start": start, "end": end, "min": lo, "max": hi}


def channel(label, color, start=None, end=None, **kw):
    raw = {"label": label, "color": color, **kw}
    if start is not None:
        raw["window"] = window(start, end)
    return Channel(
        label=label,
        color=color,
        start=start,
        end=end,
        min=0 if start is not None else None,
        max=65535 if start is not None else None,
        active=kw.get("active", True),
        inverted=kw.get("inverted", False),
        raw=raw,
    )


def test_one_layer_per_channel_from_omero():
    levels, sources = pyramid()
    chans = [channel("DAPI", "0000FF", 10, 500), channel("GFP", "00FF00", 20, 900, active=False)]
    out = L.layers_for_images([make_image(levels, channels=chans)])
    assert [m["name"] for _, m, _ in out] == ["cells: DAPI", "cells: GFP"]
    assert [t for _, _, t in out] == ["image", "image"]
    (d0, m0, _), (_, m1, _) = out
    assert m0["multiscale"] is True
    assert [lvl.shape for lvl in d0] == [(1, 3, 16, 16), (1, 3, 8, 8)]
    assert ensure_colormap(m0["colormap"]).colors[-1].tolist() == [0, 0, 1, 1]
    assert ensure_colormap(m1["colormap"]).colors[-1].tolist() == [0, 1, 0, 1]
    assert (m0["contrast_limits"], m1["contrast_limits"]) == ((10, 500), (20, 900))
    assert (m0["visible"], m1["visible"]) == (True, False)
    assert m0["blending"] == "additive"
    # windows given: not one pixel read
    assert [s.reads for s in sources] == [0, 0]
    # channel data really is that channel
    np.testing.assert_array_equal(d0[1].compute(), levels[1][:, 0].compute())


def test_geometry_drops_channel_axis():
    levels, _ = pyramid()
    image = make_image(levels, channels=[channel("a", "FF0000", 0, 1)] * 2)
    _, meta, _ = IL.image_layers(image)[0]
    assert meta["scale"] == (1.0, 3.0, 4.0, 5.0)
    assert meta["translate"] == (0.0, 20.0, 30.0, 40.0)
    assert meta["axis_labels"] == ("t", "z", "y", "x")
    assert meta["units"] == ("second", "micrometer", "micrometer", "micrometer")
    assert "affine" not in meta


def test_affine_over_non_channel_axes():
    levels, _ = pyramid()
    rot = np.eye(5)
    rot[2:4, 2:4] = [[0, -1], [1, 0]]
    image = make_image(levels, affine=rot)
    meta = IL.image_layers(image)[0][1]
    np.testing.assert_array_equal(meta["affine"], rot)
    # an affine over the spatial axes only is embedded in the layer's axes
    spatial = np.eye(4)
    spatial[1:3, 1:3] = [[0, -1], [1, 0]]
    meta = IL.image_layers(make_image(levels, affine=spatial))[0][1]
    expected = np.eye(5)
    expected[2:4, 2:4] = [[0, -1], [1, 0]]
    np.testing.assert_array_equal(meta["affine"], expected)


def test_unknown_unit_is_dropped_with_warning():
    levels, _ = pyramid(shape=(16, 16), levels=1)
    axes = (Axis("y", "space", "furlongs-ish"), Axis("x", "space", "nanometer"))
    with pytest.warns(NgffComplianceWarning, match="furlongs-ish"):
        meta = IL.image_layers(make_image(levels, axes=axes, name="img"))[0][1]
    assert meta["units"] == ("pixel", "nanometer")
    assert meta["multiscale"] is False


def test_missing_colour_and_window_get_defaults_without_breaking_others():
    levels, sources = pyramid()
    chans = [channel("DAPI", "0000FF", 10, 500), Channel(label=None, raw={})]
    out = IL.image_layers(make_image(levels, channels=chans))
    m0, m1 = out[0][1], out[1][1]
    assert m0["contrast_limits"] == (10, 500)
    assert m1["name"] == "cells: channel 1"
    assert m1["colormap"] == "green"  # napari's magenta/green pair, second entry
    # limits of the window-less channel come from the smallest level only
    smallest = levels[-1][:, 1].compute()
    assert m1["contrast_limits"] == (float(smallest.min()), float(smallest.max()))
    assert sources[0].reads == 0
    assert sources[1].reads > 0


def test_no_omero_multichannel_defaults():
    levels, _ = pyramid(shape=(3, 8, 8), levels=1)
    axes = TCZYX[1:2] + TCZYX[3:]
    out = IL.image_layers(make_image(levels, axes=axes, name=None))
    assert [m["name"] for _, m, _ in out] == [f"cells: channel {i}" for i in range(3)]
    colours = [m["colormap"] for _, m, _ in out]
    assert len(set(colours)) == 3
    assert {m["blending"] for _, m, _ in out} == {"additive"}
    assert all(m["metadata"]["omezarr"]["channel"] is None for _, m, _ in out)


def test_single_channel_named_by_label_when_image_has_no_name():
    levels, _ = pyramid(shape=(1, 8, 8), levels=1)
    axes = TCZYX[1:2] + TCZYX[3:]
    out = IL.image_layers(
        make_image(levels, axes=axes, name="/", channels=[channel("Ch", "FF0000")])
    )
    assert out[0][1]["name"] == "Ch"
    assert out[0][1]["colormap"] == "#ff0000"
    assert out[0][1]["blending"] == "translucent"


def test_black_colour_and_inverted():
    levels, _ = pyramid(shape=(2, 8, 8), levels=1)
    axes = TCZYX[1:2] + TCZYX[3:]
    chans = [channel("a", "000000", 0, 9), channel("b", "FF00FF", 0, 9, inverted=True)]
    out = IL.image_layers(make_image(levels, axes=axes, channels=chans))
    assert out[0][1]["colormap"] == "magenta"  # black would be invisible: default colour
    inverted = out[1][1]["colormap"]
    assert isinstance(inverted, Colormap)
    assert inverted.colors[0].tolist() == [1, 0, 1, 1]
    assert inverted.colors[-1].tolist() == [0, 0, 0, 1]


def test_no_window_reads_smallest_level_only():
    levels, sources = pyramid(shape=(4, 64, 64), levels=3)
    out = IL.image_layers(make_image(levels, axes=TCZYX[2:], name="vol"))
    assert out[0][1]["contrast_limits"] == (200.0, 209.0)
    assert [s.reads > 0 for s in sources] == [False, False, True]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_metadata_convention(version):
    levels, _ = pyramid()
    label = make_image(
        [da.zeros((1, 3, 16, 16), dtype="uint32")],
        axes=TCZYX[:1] + TCZYX[2:],
        name="nuclei",
        path="labels/nuclei",
        version=version,
        kind="labels",
    )
    image = make_image(levels, channels=[channel("a", "FF0000", 0, 5)] * 2, labels=[label])
    image.version = version
    out = L.layers_for_images([image])
    assert [t for _, _, t in out] == ["image", "image", "labels"]
    blocks = [m["metadata"]["omezarr"] for _, m, _ in out]
    assert all(set(b) >= KEYS for b in blocks)
    assert [b["channel_index"] for b in blocks] == [0, 1, None]
    assert [b["kind"] for b in blocks] == ["image", "image", "labels"]
    assert blocks[0]["channel"] == image.channels[0].raw
    assert blocks[2]["path"] == "labels/nuclei"
    assert {b["version"] for b in blocks} == {version}
    assert {b["store"] for b in blocks} == {"/data/cells.ome.zarr"}


def test_rgb_rule():
    levels, _ = pyramid(shape=(1, 3, 1, 16, 16), dtype="uint8")
    rgb = [channel(f"Channel {i}", c, 0, 255) for i, c in enumerate(IL.RGB_COLORS)]
    (data, meta, _), *rest = IL.image_layers(make_image(levels, channels=rgb, name="photo"))
    assert not rest
    assert meta["rgb"] is True
    assert [lvl.shape for lvl in data] == [(1, 1, 16, 16, 3), (1, 1, 8, 8, 3)]
    np.testing.assert_array_equal(data[0][0, 0, ..., 1].compute(), levels[0][0, 1, 0].compute())
    assert meta["name"] == "photo"
    assert meta["metadata"]["omezarr"]["channels"] == [c.raw for c in rgb]
    # a tuned window, another dtype, or other colours keep one layer per channel
    tuned = [*rgb[:2], channel("Channel 2", "0000FF", 10, 200)]
    assert len(IL.image_layers(make_image(levels, channels=tuned))) == 3
    levels16, _ = pyramid(shape=(1, 3, 1, 16, 16))
    assert len(IL.image_layers(make_image(levels16, channels=rgb))) == 3


def test_labels_layer_colours_and_features():
    data = np.zeros((16, 16), dtype="uint16")
    data[:4, :4], data[5:8, 5:8], data[10:, 10:] = 1, 2, 7
    level0, source0 = counting(data)
    level1, source1 = counting(data[::2, ::2])
    meta = LabelMeta(
        colors={1: (1.0, 0.0, 0.0, 1.0)},
        properties=[{"label-value": 1, "area": 16}, {"label-value": 2, "class": "cell"}],
    )
    label = make_image(
        [level0, level1],
        axes=TCZYX[3:],
        name="ignored",
        path="labels/cells",
        label=meta,
        kind="labels",
    )
    _, lmeta, kind = LL.labels_layer(label)
    assert kind == "labels"
    assert lmeta["name"] == "cells"
    assert lmeta["multiscale"] is True
    colours = lmeta["colormap"]
    assert colours[1] == (1.0, 0.0, 0.0, 1.0)
    assert colours[0][3] == 0
    assert colours[None][3] == 1  # anything unseen is still visible
    cycle = label_colormap(49, 0.5, background_value=0)
    for value in (2, 7):  # unlisted labels get napari's usual distinct colours
        np.testing.assert_allclose(colours[value], cycle.map(np.array([value]))[0])
    assert colours[2] != colours[7]
    assert source0.reads == 0
    assert source1.reads > 0
    features = lmeta["features"]
    assert features["index"].tolist() == [1, 2]
    assert features["area"].iloc[0] == 16
    assert features["class"].iloc[1] == "cell"


def test_labels_without_colours_use_napari_default():
    label = make_image(
        [da.zeros((8, 8), dtype="int32")], axes=TCZYX[3:], path="labels/x", kind="labels"
    )
    _, meta, kind = LL.labels_layer(label)
    assert kind == "labels"
    assert "colormap" not in meta
    assert "features" not in meta
    assert meta["multiscale"] is False


def test_float_labels_open_as_image_with_warning():
    label = make_image(
        [da.zeros((8, 8), dtype="float32")], axes=TCZYX[3:], path="labels/x", kind="labels"
    )
    with pytest.warns(NgffComplianceWarning, match="float32"):
        out = L.layers_for_images([label])
    assert out[0][2] == "image"


def test_fallback_names():
    image = make_image([da.zeros((4, 4))], axes=TCZYX[3:], name=None, store="/d/x.ome.zarr")
    assert LP.fallback_name(image) == "x"
    image.path = "A/1/0"
    assert IL.image_layers(image)[0][1]["name"] == "x/A/1/0"
    url = make_image([da.zeros((4, 4))], axes=TCZYX[3:], name="", store="http://h/p/y.zarr/")
    assert IL.image_layers(url)[0][1]["name"] == "y"


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "float32"])
def test_single_level_without_window_gets_limits_from_its_data(dtype):
    """ngff 0.1/0.2 examples hold uint8 values 2..21: napari's own guess for 8-bit
    data is 0..255, which shows them black. Every dtype gets the data's range."""
    data = (np.arange(4 * 32 * 32) % 20 + 2).astype(dtype).reshape(4, 32, 32)
    level, source = counting(data)
    meta = IL.image_layers(make_image([level], axes=TCZYX[2:], name="vol"))[0][1]
    assert meta["contrast_limits"] == (2, 21)
    assert source.reads == 1


def test_large_single_plane_limits_read_its_centre_only():
    data = np.zeros((3000, 3000), np.uint16)
    data[1000:2000, 1000:2000] = 7
    data[0, 0] = 60000  # outside the central window that is sampled
    level = da.from_array(data, chunks=1000)
    meta = IL.image_layers(make_image([level], axes=TCZYX[3:], name="big"))[0][1]
    assert meta["contrast_limits"] == (0, 7)


def test_unreadable_smallest_level_warns_and_still_opens():
    def broken(block):
        raise OSError("chunk 0/0 is corrupt")

    good = da.zeros((16, 16), dtype="uint16", chunks=8)
    bad = da.zeros((8, 8), dtype="uint16", chunks=8).map_blocks(broken, dtype="uint16")
    with pytest.warns(NgffComplianceWarning, match="chunk 0/0 is corrupt"):
        out = IL.image_layers(make_image([good, bad], axes=TCZYX[3:], name="img"))
    assert out[0][1]["name"] == "img"
    # the dtype's range, so that napari does not read the broken level again to guess
    assert out[0][1]["contrast_limits"] == (0, 65535)


@pytest.mark.parametrize("model", ["greyscale", "color", None])
def test_greyscale_rendering_model_shows_grey(model):
    levels, _ = pyramid(shape=(2, 8, 8), levels=1)
    channels = [
        Channel(label="a", color="FF0000", start=0, end=9),
        Channel(label="b", color="00FF00", start=0, end=9),
    ]
    attrs = {"omero": {"channels": [], "rdefs": {"model": model}}} if model else {}
    image = make_image(levels, axes=TCZYX[1:2] + TCZYX[3:], channels=channels, attrs=attrs)
    metas = [m for _, m, _ in IL.image_layers(image)]
    colormaps = [ensure_colormap(m["colormap"]).colors[-1].tolist() for m in metas]
    if model == "greyscale":
        assert colormaps == [[1, 1, 1, 1], [1, 1, 1, 1]]
    else:
        assert colormaps == [[1, 0, 0, 1], [0, 1, 0, 1]]
    expected = {"model": model} if model else None
    assert [m["metadata"]["omezarr"]["rdefs"] for m in metas] == [expected, expected]


@pytest.mark.parametrize(
    ("plane", "warned"), [((0, 1), True), ((1, 2), False), ((0, 2), True)], ids=str
)
def test_rotation_out_of_the_2d_plane_is_explained_once(plane, warned, recwarn):
    """napari's 2D view cannot apply a rotation that turns a sliced axis into a shown one."""
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    affine = np.eye(4)
    i, j = plane
    affine[i, i], affine[i, j], affine[j, i], affine[j, j] = c, -s, s, c
    image = make_image([da.zeros((4, 8, 8), "uint8")], axes=TCZYX[2:], name="rot")
    image.affine = affine
    IL.image_layers(image)
    ours = [w for w in recwarn.list if "cannot apply that rotation" in str(w.message)]
    assert len(ours) == (1 if warned else 0)
    if warned:
        names = " and ".join("zyx"[k] for k in plane)
        assert f"rot: its transformation rotates {names} into each other" in str(ours[0].message)
