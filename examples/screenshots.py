"""Take the README screenshots from a real napari window.

Run headless with `xvfb-run -a -s "-screen 0 1400x900x24" python examples/screenshots.py
[docs]`; it writes `sample.png` (the sample open with image and labels),
`save-dialog.png` (File > Save Selected Layers listing OME-Zarr) and `plate.png` (a
96-well plate with its well names and the Plate browser) into the folder.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import napari
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication, QComboBox, QFileDialog, QLineEdit

from napari_omezarr_x._napari.sample import open_sample

WINDOW_SIZE = (1280, 820)


def settle(seconds: float = 1.0) -> None:
    """Let Qt and vispy draw (and the sample load) before grabbing pixels."""
    app = QApplication.instance()
    timer_done = []
    QTimer.singleShot(int(seconds * 1000), lambda: timer_done.append(True))
    while not timer_done:
        app.processEvents()


def sample_screenshot(viewer: napari.Viewer, path: Path) -> None:
    """The sample in 2D at mid-depth, nuclei outlined by their labels."""
    labels = open_sample(viewer)[-1]
    labels.opacity = 0.9
    depth = viewer.dims.range[0]
    viewer.dims.set_point(0, (depth.start + depth.stop) / 2)
    viewer.layers.selection.active = labels
    viewer.reset_view()
    settle(2.0)
    viewer.window.screenshot(str(path), canvas_only=False)


def save_dialog_screenshot(viewer: napari.Viewer, path: Path, folder: Path) -> None:
    """File > Save Selected Layers... in `folder`, file-type list open, then cancelled."""
    viewer.layers.selection = set(viewer.layers)
    action = next(
        a for a in viewer.window.file_menu.actions() if a.text().startswith("Save Selected")
    )

    def grab_and_close() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QFileDialog):
            QTimer.singleShot(200, grab_and_close)
            return
        dialog.resize(900, 520)
        dialog.setDirectory(str(folder))
        dialog.findChild(QLineEdit, "fileNameEdit").setText("cells3d.ome.zarr")
        combo = dialog.findChild(QComboBox, "fileTypeCombo")
        combo.showPopup()
        settle(0.8)
        frame = viewer.window._qt_window.frameGeometry()
        screen = QApplication.primaryScreen()
        screen.grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height()).save(str(path))
        combo.hidePopup()
        dialog.reject()

    QTimer.singleShot(500, grab_and_close)
    action.trigger()


def demo_plate(path: Path) -> Path:
    """A 96-well plate of 2 fields, nuclei and actin-like channels, nuclei labels."""
    import numpy as np
    from scipy import ndimage

    from napari_omezarr_x.model import Channel
    from napari_omezarr_x.write import FieldSpec, LabelsSpec, WellSpec, write_plate

    def field(seed: int) -> FieldSpec:
        rng = np.random.default_rng(seed)
        spots = np.zeros((160, 160))
        spots[tuple(rng.integers(8, 152, (2, 18)))] = 1
        dna = ndimage.gaussian_filter(spots, 5)
        dna = dna / dna.max() * 3000 + rng.normal(200, 30, spots.shape)
        actin = ndimage.gaussian_filter(spots, 11) * 60000 + rng.normal(300, 40, spots.shape)
        nuclei, _ = ndimage.label(dna > 1200)
        image = np.stack([dna, actin]).clip(0, 65535).astype("uint16")
        return FieldSpec(image, labels=[LabelsSpec(nuclei.astype("uint16"), "nuclei")])

    rows, columns = list("ABCDEFGH"), [f"{c:02d}" for c in range(1, 13)]
    wells = [
        WellSpec(r, c, [field(100 * i + 2 * j + f) for f in range(2)])
        for i, r in enumerate(rows)
        for j, c in enumerate(columns)
        if (i * 5 + j) % 11 != 4  # a few empty wells
    ]
    return Path(
        write_plate(
            path,
            wells,
            rows=rows,
            columns=columns,
            name="screen 1",
            axes="cyx",
            units=[None, "micrometer", "micrometer"],
            scale=[1, 0.65, 0.65],
            channels=[
                Channel(label="DNA", color="3399FF", start=150, end=2400),
                Channel(label="actin", color="FF9933", start=300, end=2500),
            ],
        )
    )


def plate_screenshot(viewer: napari.Viewer, path: Path, folder: Path) -> None:
    """A plate open: well names on the canvas, the Plate browser docked beside it."""
    viewer.layers.clear()
    viewer.open(str(demo_plate(folder / "plate.ome.zarr")), plugin="napari-omezarr-x")
    settle(1.0)
    viewer.reset_view()
    viewer.cursor.position = (0, 3.4 * 160 * 0.65, 5.5 * 160 * 0.65)
    viewer.mouse_over_canvas = True
    viewer.update_status_from_cursor()
    settle(2.0)
    viewer.window.screenshot(str(path), canvas_only=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path("docs"))
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-omezarr-x")
    viewer.window._qt_window.resize(*WINDOW_SIZE)
    sample_screenshot(viewer, args.folder / "sample.png")
    with tempfile.TemporaryDirectory() as tmp:
        browse = Path(tmp) / "experiments"
        for name in ("2024-05-02 organoids", "2024-05-09 organoids"):
            (browse / name).mkdir(parents=True)
        save_dialog_screenshot(viewer, args.folder / "save-dialog.png", browse)
        plate_screenshot(viewer, args.folder / "plate.png", Path(tmp))
    viewer.close()
    print("Wrote sample.png, save-dialog.png and plate.png to", args.folder)


if __name__ == "__main__":
    main()
