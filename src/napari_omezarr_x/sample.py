"""The built-in sample: a synthetic 3D tissue of cells and its nuclei segmentation.

skimage's `cells3d` (the volume the OME-Zarr tutorial uses) needs a download, so the
plugin makes a look-alike offline: two channels (membranes, nuclei) of about
60 x 256 x 256 uint16 voxels with a microscope-like blur and camera noise, segments the
nuclei the tutorial's way, and writes both as one OME-Zarr with the project's own writer
into a per-user cache folder. Opening the sample therefore exercises writer and reader.
Everything is deterministic: the same seed gives the same voxels on every run.
"""

from __future__ import annotations

import colorsys
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

from . import __version__
from .model import Channel

logger = logging.getLogger(__name__)

SAMPLE_VERSION = "1"
"""Bump when the generated data or its layout changes, so cached copies are remade."""
SHAPE = (60, 256, 256)
VOXEL_SIZE_UM = (0.29, 0.26, 0.26)
"""z, y, x voxel size in micrometres (those of skimage's cells3d)."""
CHANNEL_NAMES = ("membranes", "nuclei")
CHANNEL_COLORS = ("00FF00", "FF00FF")
IMAGE_NAME = "cells3d"
LABELS_NAME = "nuclei"
PYRAMID_LEVELS = 3
"""The sample fits one 256-pixel tile; a short pyramid still shows multiscale at work."""
CACHE_ENV = "NAPARI_OMEZARR_X_CACHE"
"""Environment variable that overrides the cache folder (tests, shared machines)."""

_STAGING_PREFIX = ".cells3d-staging-"
_CELL_SPACING_UM = 10.5
_CAMERA_OFFSET = 100.0
_READ_NOISE = 3.0


@dataclass(frozen=True)
class SyntheticCells:
    """A generated volume and the ground truth it was drawn from.

    `image` is (channel, z, y, x) uint16 with channels `CHANNEL_NAMES`; `nuclei_truth`
    is (z, y, x) with 0 outside nuclei and the cell number (1, 2, ...) inside.
    """

    image: np.ndarray
    nuclei_truth: np.ndarray
    voxel_size: tuple[float, float, float]


def make_cells(shape: tuple[int, int, int] = SHAPE, seed: int = 0) -> SyntheticCells:
    """Generate a two-channel fluorescence volume of a packed tissue of cells.

    Cells are the Voronoi regions of well-spaced centres; membranes are the (slightly
    wavy) region borders, nuclei textured ellipsoids inside each cell. The ideal signal
    is blurred by an anisotropic Gaussian point spread function, dimmed with depth and
    turned into camera counts with Poisson shot noise, offset and read noise.
    """
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"expected a 3D shape of at least 8 voxels per axis, got {shape}")
    rng = np.random.default_rng(seed)
    voxel = np.asarray(VOXEL_SIZE_UM)
    size_um = np.asarray(shape) * voxel
    centres = _cell_centres(rng, size_um)
    nuclei_shape = _nucleus_matrices(rng, centres)

    # Geometry on a half-resolution grid (smooth fields), interpolated to full size.
    coarse_shape = tuple(max(4, (n + 1) // 2) for n in shape)
    coarse_voxel = size_um / np.asarray(coarse_shape)
    grid = _grid_points(coarse_shape, coarse_voxel) + _warp(rng, coarse_shape)
    dist, nearest = cKDTree(centres).query(grid, k=2)
    gap = np.linalg.norm(centres[nearest[:, 0]] - centres[nearest[:, 1]], axis=1)
    membrane_dist = (dist[:, 1] ** 2 - dist[:, 0] ** 2) / (2.0 * gap)
    offset = grid - centres[nearest[:, 0]]
    radial = np.einsum("nij,nj->ni", nuclei_shape[nearest[:, 0]], offset)
    nucleus_q = np.sqrt(np.einsum("ni,ni->n", radial, radial))

    def full(values: np.ndarray) -> np.ndarray:
        coarse = values.reshape(coarse_shape).astype(np.float32)
        zoom = [n / c for n, c in zip(shape, coarse_shape, strict=True)]
        return ndi.zoom(coarse, zoom, order=1, grid_mode=True, mode="nearest")

    membrane_dist = full(membrane_dist)
    nucleus_q = full(nucleus_q)
    cell = full(nearest[:, 0].astype(np.float32))

    inside = nucleus_q < 1.0
    truth = np.where(inside, np.rint(cell).astype(np.int32) + 1, 0).astype(np.uint16)

    brightness = rng.lognormal(0.0, 0.25, len(centres)).astype(np.float32)
    texture = _smooth_noise(rng, shape, sigma=1.5, amplitude=0.35)
    nuclei = 1.0 / (1.0 + np.exp((nucleus_q - 1.0) / 0.06))
    nuclei *= brightness[np.rint(cell).astype(np.intp)] * np.clip(texture, 0.3, None)

    wall = np.exp(-((membrane_dist / 0.35) ** 2))
    membranes = wall * np.clip(_smooth_noise(rng, shape, sigma=6.0, amplitude=0.6), 0.2, None)
    membranes += 0.06 * (nucleus_q > 1.1)  # dim cytoplasm, dark nuclei

    depth = np.exp(-np.arange(shape[0], dtype=np.float32) * voxel[0] / 40.0)[:, None, None]
    photons = {"membranes": 900.0, "nuclei": 1400.0}
    channels = []
    for name, signal in zip(CHANNEL_NAMES, (membranes, nuclei), strict=True):
        blurred = ndi.gaussian_filter(signal.astype(np.float32), (2.0, 1.1, 1.1))
        expected = (blurred * depth + 0.02) * photons[name]
        counts = rng.poisson(expected).astype(np.float32) * 2.0 + _CAMERA_OFFSET
        counts += rng.normal(0.0, _READ_NOISE, shape).astype(np.float32)
        channels.append(np.clip(np.rint(counts), 0, np.iinfo(np.uint16).max).astype(np.uint16))
    return SyntheticCells(np.stack(channels), truth, VOXEL_SIZE_UM)


def segment_nuclei(nuclei: np.ndarray, voxel_size: tuple[float, ...] = VOXEL_SIZE_UM) -> np.ndarray:
    """Label the nuclei of a 3D nuclear stain as in the OME-Zarr tutorial.

    Median filter (per optical section, against shot noise), Gaussian blur, Otsu
    threshold, then per foreground object: Euclidean distance transform in micrometres,
    one marker per local maximum of the distance (at least 2.5 um apart) and a watershed
    of the inverted distance. These last steps run on each object's bounding box, which
    is several times faster than on the whole volume. Returns uint32 labels 1..n, 0 for
    background; specks under 2 um^3 are dropped.
    """
    if nuclei.ndim != 3:
        raise ValueError(f"expected a 3D (z, y, x) nuclei image, got shape {nuclei.shape}")
    denoised = ndi.median_filter(nuclei, size=(1, 3, 3))
    smooth = ndi.gaussian_filter(denoised.astype(np.float32), sigma=(1.0, 2.0, 2.0))
    components, _ = ndi.label(smooth > threshold_otsu(smooth))
    min_voxels = 2.0 / float(np.prod(voxel_size))
    min_distance = max(1, round(2.5 / min(voxel_size)))
    labels = np.zeros(nuclei.shape, dtype=np.uint32)
    count = 0
    for index, box in enumerate(ndi.find_objects(components), start=1):
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        blob = ndi.binary_fill_holes(components[box] == index)
        if blob.sum() < min_voxels:
            continue
        distance = ndi.distance_transform_edt(blob, sampling=voxel_size)
        distance = ndi.gaussian_filter(distance, sigma=1.0)
        peaks = peak_local_max(
            distance, min_distance=min_distance, labels=blob.astype(np.int32), exclude_border=False
        )
        if len(peaks) == 0:  # a plateau: one marker at its first deepest point
            peaks = np.argwhere(distance == distance.max())[:1]
        markers = np.zeros(blob.shape, dtype=np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        pieces = watershed(-distance, markers, mask=blob)
        labels[box][blob] = pieces[blob] + count
        count += len(peaks)
    return labels


def label_colors(labels: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
    """Distinct, stable RGBA colours (0-255) for every label value present but 0."""
    values = np.unique(labels)
    golden = 0.618033988749895
    colors = {}
    for value in values[values != 0].tolist():
        red, green, blue = colorsys.hsv_to_rgb((value * golden) % 1.0, 0.65, 1.0)
        colors[int(value)] = (round(red * 255), round(green * 255), round(blue * 255), 255)
    return colors


def cache_dir() -> Path:
    """The folder holding generated samples: $NAPARI_OMEZARR_X_CACHE, else the user cache."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "napari-omezarr-x"


def sample_path(directory: Path | str | None = None) -> Path:
    """Where the current sample version lives (whether or not it exists yet)."""
    folder = Path(directory) if directory is not None else cache_dir()
    return folder / f"cells3d-v{SAMPLE_VERSION}-{__version__}.ome.zarr"


def channel_settings(image: np.ndarray) -> list[Channel]:
    """Rendering settings for a (channel, z, y, x) sample: names, colours and windows.

    The window runs from the 0.5th to the 99.8th percentile, so background is black and
    only the brightest specks saturate; min and max span the data.
    """
    channels = []
    for name, color, data in zip(CHANNEL_NAMES, CHANNEL_COLORS, image, strict=True):
        start, end = np.percentile(data[:: max(1, len(data) // 8)], (0.5, 99.8))
        channels.append(
            Channel(
                label=name,
                color=color,
                start=float(round(start)),
                end=float(round(end)),
                min=0.0,
                max=float(data.max()),
                raw={"family": "linear", "coefficient": 1.0},
            )
        )
    return channels


def write_sample(path: Path | str, *, version: str = "0.5", seed: int = 0) -> str:
    """Generate the sample and write it as an OME-Zarr image with nuclei labels at `path`.

    The image has axes c, z, y, x in micrometres, a pyramid, omero channel settings and
    `labels/nuclei` with one colour and a volume (um^3) per nucleus. Returns the path.
    """
    from .write import add_labels, write_image

    cells = make_cells(seed=seed)
    labels = segment_nuclei(cells.image[1], cells.voxel_size)
    written = write_image(
        os.fspath(path),
        cells.image,
        axes="czyx",
        units=(None, "micrometer", "micrometer", "micrometer"),
        scale=(1.0, *cells.voxel_size),
        name=IMAGE_NAME,
        channels=channel_settings(cells.image),
        version=version,
        levels=PYRAMID_LEVELS,
    )
    voxel_volume = float(np.prod(cells.voxel_size))
    counts = np.bincount(labels.ravel())
    properties = [
        {"label-value": value, "volume_um3": round(float(counts[value]) * voxel_volume, 2)}
        for value in np.flatnonzero(counts)
        if value != 0
    ]
    add_labels(
        written,
        labels,
        LABELS_NAME,
        colors=label_colors(labels),
        properties=properties,
    )
    return written


def ensure_sample(directory: Path | str | None = None) -> Path:
    """Path of the cached sample store, generating it first if it is not there.

    The store is written into a private temporary folder next to its final place and
    renamed into place when complete, so a reader never sees half a sample and two
    processes generating at once do not clash (the second rename loses, harmlessly).
    When the default cache folder cannot be created or written, the system's temporary
    folder is used instead.
    """
    target = sample_path(directory)
    if target.is_dir():
        return target
    if directory is None and not _writable(target.parent):
        fallback = Path(tempfile.gettempdir()) / "napari-omezarr-x"
        logger.warning("Cannot write to %s; generating the sample in %s", target.parent, fallback)
        return ensure_sample(fallback)
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("Generating the Cells 3D sample in %s", target)
    with tempfile.TemporaryDirectory(prefix=_STAGING_PREFIX, dir=target.parent) as staging:
        staged = Path(staging) / target.name
        write_sample(staged)
        try:
            staged.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            logger.info("Another process wrote %s first; using its copy", target)
    _remove_stale(target)
    return target


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def _remove_stale(current: Path) -> None:
    """Delete samples of other versions and staging folders abandoned over an hour ago."""
    for entry in current.parent.iterdir():
        stale_sample = entry.name.startswith("cells3d-v") and entry != current
        abandoned = entry.name.startswith(_STAGING_PREFIX) and _age_seconds(entry) > 3600
        if entry.is_dir() and (stale_sample or abandoned):
            shutil.rmtree(entry, ignore_errors=True)


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _cell_centres(rng: np.random.Generator, size_um: np.ndarray) -> np.ndarray:
    """Dart-throwing: centres no closer than the cell spacing, also just outside the box.

    Centres beyond the borders make the cells at the edges look cut, as in a real stack.
    """
    margin = 0.35 * _CELL_SPACING_UM
    low, high = -margin, size_um + margin
    low = np.array([0.15 * size_um[0], low, low])  # z: keep nuclei within the stack
    high = np.array([0.85 * size_um[0], high[1], high[2]])
    accepted: list[np.ndarray] = []
    candidates = rng.uniform(low, high, size=(4000, 3))
    for point in candidates:
        if not accepted or np.min(np.linalg.norm(np.asarray(accepted) - point, axis=1)) >= (
            _CELL_SPACING_UM
        ):
            accepted.append(point)
    return np.asarray(accepted)


def _nucleus_matrices(rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """Per cell, the matrix mapping an offset (um) to ellipsoid units (|M d| < 1 inside).

    Semi-axes are 30-42 % of the distance to the nearest other centre, so nuclei never
    touch, flattened in z and turned by a random angle about z.
    """
    nearest = cKDTree(centres).query(centres, k=2)[0][:, 1]
    matrices = np.empty((len(centres), 3, 3))
    for i, spacing in enumerate(nearest):
        semi = spacing * rng.uniform(0.30, 0.42) * np.array([0.7, 1.0, rng.uniform(0.7, 1.0)])
        angle = rng.uniform(0.0, np.pi)
        cos, sin = np.cos(angle), np.sin(angle)
        rotation = np.array([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
        matrices[i] = np.diag(1.0 / semi) @ rotation.T
    return matrices


def _grid_points(shape: tuple[int, ...], spacing: np.ndarray) -> np.ndarray:
    """Physical coordinates (um) of every voxel centre, as an (n, 3) array."""
    axes = [(np.arange(n) + 0.5) * step for n, step in zip(shape, spacing, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def _warp(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A smooth random displacement (um) per voxel, making cell borders gently curved."""
    fields = [_smooth_noise(rng, shape, sigma=5.0, amplitude=1.2) - 1.0 for _ in range(3)]
    fields[0] *= 0.3  # cells are flatter in z; keep borders there straighter
    return np.stack(fields, axis=-1).reshape(-1, 3)


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float, amplitude: float
) -> np.ndarray:
    """1 plus Gaussian-smoothed noise with standard deviation `amplitude`."""
    noise = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    noise *= amplitude / max(float(noise.std()), 1e-6)
    return 1.0 + noise
