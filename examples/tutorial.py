"""The OME-Zarr tutorial, step by step, with napari-omezarr-x.

The tutorial this plugin grew from loads skimage's `cells3d`, writes the nuclei as an
OME-Zarr image with a pyramid, reads it back with plain zarr, adds omero channel
settings, stores several images in nested groups, adds a watershed segmentation as
labels and looks at everything in napari, also over HTTP. The same steps here use the
plugin's API on the built-in synthetic look-alike of `cells3d` (no download).

Run it with `python examples/tutorial.py [folder]` (a temporary folder by default);
it opens napari with the results, served over HTTP from localhost for the last step.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from napari_omezarr_x.model import Image
from napari_omezarr_x.omero import read_omero, save_omero
from napari_omezarr_x.read import read_ome_zarr
from napari_omezarr_x.sample import SHAPE, label_colors, make_cells, segment_nuclei
from napari_omezarr_x.write import add_labels, write_image

LEVELS = 5
ZYX = "zyx"
MICROMETRES = ("micrometer",) * 3


@dataclass
class Results:
    """What each step produced, for a reader of the script (and for its test)."""

    cells_image: np.ndarray | None = None
    nuclei: np.ndarray | None = None
    image_path: Path | None = None
    level_shapes: list[tuple[int, ...]] = field(default_factory=list)
    read_back: np.ndarray | None = None
    omero: dict | None = None
    nested_path: Path | None = None
    nested_images: list[Image] = field(default_factory=list)
    labels: np.ndarray | None = None
    images: list[Image] = field(default_factory=list)
    remote_images: list[Image] = field(default_factory=list)
    layer_names: list[str] = field(default_factory=list)


def write_with_pyramid(folder: Path, nuclei: np.ndarray, voxel_size: tuple[float, ...]) -> Path:
    """Step 1: write the 3D nuclei image with a 5-level pyramid (NGFF 0.5)."""
    return Path(
        write_image(
            folder / "nuclei.ome.zarr",
            nuclei,
            axes=ZYX,
            units=MICROMETRES,
            scale=voxel_size,
            name="nuclei",
            levels=LEVELS,
            overwrite=True,
        )
    )


def read_with_zarr(path: Path) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Step 2: read it back with plain zarr: the full resolution is the array `"0"`."""
    root = zarr.open_group(path, mode="r")
    multiscale = root.attrs["ome"]["multiscales"][0]
    shapes = [tuple(root[d["path"]].shape) for d in multiscale["datasets"]]
    return root["0"][:], shapes


def add_channel_settings(path: Path, nuclei: np.ndarray) -> dict:
    """Step 3: add omero rendering settings: a name, a colour and a display window."""
    start, end = np.percentile(nuclei, (0.5, 99.8))
    channel = {
        "label": "nuclei",
        "color": "FF00FF",
        "window": {"start": float(start), "end": float(end), "min": 0.0, "max": 65535.0},
        "active": True,
    }
    save_omero(path, "", [channel])
    return read_omero(path, "")


def write_nested_groups(folder: Path, image: np.ndarray, voxel_size: tuple[float, ...]) -> Path:
    """Step 4: several images in one store: `sub_array_1` and `sub_array_2/sub_sub_array_1`.

    As in the tutorial, the root and `sub_array_2` are plain zarr groups made with zarr;
    each leaf is an OME-Zarr image with its own pyramid, written by `write_image`.
    """
    membranes, nuclei = image
    path = folder / "nested.ome.zarr"
    root = zarr.open_group(path, mode="w", zarr_format=3)
    root.create_group("sub_array_2")
    write_image(
        path / "sub_array_1",
        membranes,
        axes=ZYX,
        units=MICROMETRES,
        scale=voxel_size,
        name="membranes",
    )
    write_image(
        path / "sub_array_2" / "sub_sub_array_1",
        nuclei[:, ::2, ::2],
        axes=ZYX,
        units=MICROMETRES,
        scale=(voxel_size[0], 2 * voxel_size[1], 2 * voxel_size[2]),
        name="nuclei (binned 2x2)",
    )
    return path


def add_watershed_labels(
    path: Path, nuclei: np.ndarray, voxel_size: tuple[float, ...]
) -> np.ndarray:
    """Step 5: segment the nuclei (median, Gaussian, Otsu, distance, maxima, watershed)
    and store the result as `labels/watershed` of the image, with a colour per nucleus."""
    labels = segment_nuclei(nuclei, voxel_size)
    add_labels(path, labels, "watershed", colors=label_colors(labels))
    return labels


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on a free localhost port; yields the base URL."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Stay quiet: napari reads many chunks."""

    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run(folder: Path, base_url: str, viewer=None, shape: tuple[int, int, int] = SHAPE) -> Results:
    """Run every step in `folder`; open the results in `viewer` when one is given.

    `base_url` serves `folder` over HTTP (see `serve`) for the remote step; `shape` is
    the size of the synthetic volume (the sample's by default).
    """
    results = Results()
    cells = make_cells(shape)
    voxel = cells.voxel_size
    results.cells_image = cells.image
    results.nuclei = cells.image[1]

    results.image_path = write_with_pyramid(folder, results.nuclei, voxel)
    results.read_back, results.level_shapes = read_with_zarr(results.image_path)
    results.omero = add_channel_settings(results.image_path, results.nuclei)
    results.nested_path = write_nested_groups(folder, cells.image, voxel)
    results.labels = add_watershed_labels(results.image_path, results.nuclei, voxel)

    # Step 6: read it all back with the plugin's reader (what napari shows) ...
    results.images = read_ome_zarr(str(results.image_path))
    results.nested_images = read_ome_zarr(str(results.nested_path))
    # ... and the same image over HTTP.
    url = f"{base_url}/{results.image_path.name}"
    results.remote_images = read_ome_zarr(url)

    if viewer is not None:
        # The nested store opens in one go: its root is a plain group, and the reader
        # finds the images in its child groups.
        for source in (str(results.image_path), str(results.nested_path), url):
            viewer.open(source, plugin="napari-omezarr-x")
        results.layer_names = [layer.name for layer in viewer.layers]
    return results


def main(argv: list[str] | None = None) -> None:
    """Run the tutorial and show the results in napari."""
    import napari

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, help="output folder (default: temporary)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        folder = args.folder or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        base_url = stack.enter_context(serve(folder))
        viewer = napari.Viewer(title="OME-Zarr tutorial (napari-omezarr-x)")
        results = run(folder, base_url, viewer)
        # Side by side, two layers a tile: local image + labels, the nested store's two
        # images, and the image + labels read over HTTP.
        viewer.grid.stride = 2
        viewer.grid.enabled = True
        for name, colormap in (("membranes", "green"), ("nuclei (binned 2x2)", "magenta")):
            viewer.layers[name].colormap = colormap  # these two have no omero settings
            viewer.layers[name].blending = "additive"
        for layer in viewer.layers:
            if layer.metadata["omezarr"]["kind"] == "labels":
                layer.contour = 2  # outlines, so the nuclei stain shows through
        viewer.reset_view()
        print(f"Wrote {results.image_path} and {results.nested_path}; served at {base_url}")
        print("Pyramid level shapes:", results.level_shapes)
        print("Nuclei found by the watershed:", int(results.labels.max()))
        napari.run()


if __name__ == "__main__":
    main()
