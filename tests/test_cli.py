"""The `napari-omezarr-x` console script: exit codes, --json, usage errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_omezarr_x.cli import main

SCRIPT = shutil.which("napari-omezarr-x") or str(Path(sys.executable).parent / "napari-omezarr-x")


def test_console_script_exit_codes_and_json(conformance_dir: Path, tmp_path: Path) -> None:
    """The installed script: exit 1 and a JSON report for an invalid store, 2 for no store."""
    invalid = conformance_dir / "0.5/spec/invalid/image/missing_axes.ome.zarr"
    bad = subprocess.run(
        [SCRIPT, "validate", str(invalid), "--metadata-only", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1, bad.stderr
    report = json.loads(bad.stdout)
    assert report["valid"] is False
    assert report["version"] == "0.5"
    assert any(
        "axes" in e["message"] and e["location"].startswith("zarr.json#") for e in report["errors"]
    )
    missing = subprocess.run(
        [SCRIPT, "validate", str(tmp_path / "nope.zarr")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
    assert "nope.zarr: no such file or directory" in missing.stderr


def test_validate_json_in_process(
    conformance_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    valid = conformance_dir / "0.5/spec/valid/image/missing_name.ome.zarr"
    assert main(["validate", str(valid), "--metadata-only", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "valid": True,
        "version": "0.5",
        "schema": "0.5",
        "errors": [],
        "warnings": [],
    }
    strict_invalid = conformance_dir / "0.5/strict/invalid/plate/missing_name.ome.zarr"
    assert main(["validate", str(strict_invalid), "--metadata-only"]) == 0
    capsys.readouterr()
    assert main(["validate", str(strict_invalid), "--metadata-only", "--strict"]) == 1
    assert "'name' is a required property" in capsys.readouterr().out


def test_usage_errors_return_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["validate"]) == 2
    assert main(["convert", "a.tif", "b.zarr", "--chunks", "1,a"]) == 2
    assert "expected integers" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.zarr")]) == 2
    assert "missing.zarr: no such file or directory" in capsys.readouterr().err
    assert main(["--help"]) == 0
    # nothing listens on port 1: unreadable, not invalid
    assert main(["validate", "http://127.0.0.1:1/x.zarr"]) == 2
    assert "cannot read store" in capsys.readouterr().err
    assert main(["info", "http://127.0.0.1:1/x.zarr"]) == 2


def test_validate_text_and_info_json(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = corpus_dir / "neuroglancer_ngff-zarr_simple_0.5.zip"
    assert main(["validate", str(store)]) == 0
    assert "valid OME-NGFF 0.5" in capsys.readouterr().out
    assert main(["info", str(store), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["version"] == "0.5"
    assert [n["shape"] for n in info["nodes"] if n["kind"] == "array"] == [[10, 10], [5, 5], [2, 2]]
    assert main(["validate", str(corpus_dir / "mobie-io_blobs.ome.zarr")]) == 1
    assert "coordinateTransformations" in capsys.readouterr().out


def test_convert_command_with_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = (np.arange(3 * 32 * 32) % 200).astype("uint8").reshape(3, 32, 32)
    tifffile.imwrite(tmp_path / "in.tif", data)
    out = tmp_path / "out.zarr"
    args = ["convert", str(tmp_path / "in.tif"), str(out), "--version", "0.4", "--levels", "2"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "100.0%" in captured.err
    assert f"wrote {out}" in captured.out
    assert main(["validate", str(out)]) == 0
    group = zarr.open_group(out, mode="r")
    np.testing.assert_array_equal(np.asarray(group["0"]), data)
    assert main(args) == 1  # exists, no --overwrite
    err = capsys.readouterr().err
    assert f"{out}: already exists (use --overwrite to replace it)" in err
    assert "overwrite=True" not in err
    assert main([*args, "--overwrite"]) == 0


@pytest.fixture
def no_event_loop(make_napari_viewer, monkeypatch: pytest.MonkeyPatch) -> list:
    """Viewers the commands create are test-managed ones; napari.run returns at once."""
    import napari

    viewers: list = []

    def viewer(**kwargs: object):
        viewers.append(make_napari_viewer(**kwargs))
        return viewers[-1]

    monkeypatch.setattr(napari, "Viewer", viewer)
    monkeypatch.setattr(napari, "run", lambda *a, **k: None)
    return viewers


def test_view_opens_stores_through_the_plugin(corpus_dir: Path, no_event_loop: list) -> None:
    store = corpus_dir / "ngio_test_image_tczyx.zarr"
    assert main(["view", str(store)]) == 0
    (viewer,) = no_event_loop
    kinds = sorted(type(layer).__name__ for layer in viewer.layers)
    assert kinds == ["Image", "Image", "Labels"]
    assert all(layer.metadata["omezarr"]["version"] == "0.4" for layer in viewer.layers)


def test_sample_command_calls_show_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """`sample` hands over to the sample module's viewer (tested in test_sample.py, which
    generates the data; done again here it would cost the suite ~20 s)."""
    from napari_omezarr_x._napari import sample

    calls: list[str] = []
    monkeypatch.setattr(sample, "show_sample", lambda: calls.append("shown"))
    assert main(["sample"]) == 0
    assert calls == ["shown"]


def test_info_and_validate_on_an_s3_url(s3_env, capsys):
    from napari_omezarr_x.write import write_image

    url = "s3://private/cli/img.ome.zarr"
    write_image(url, np.zeros((2, 32, 32), dtype=np.uint8), axes="cyx", overwrite=True)
    assert main(["validate", url]) == 0
    assert f"{url}: valid OME-NGFF 0.5" in capsys.readouterr().out
    assert main(["info", url]) == 0
    assert "array (2, 32, 32) uint8" in capsys.readouterr().out
    assert main(["info", "s3://no-such-bucket/img.ome.zarr"]) == 2
    assert "bucket 'no-such-bucket' does not exist" in capsys.readouterr().err


def test_view_keeps_the_window_when_a_store_is_broken(
    tmp_path: Path, corpus_dir: Path, no_event_loop: list, qtbot
) -> None:
    """`view` closed with an error when one path failed; now each failure is a
    notification and the other stores open."""
    from napari.utils.notifications import NotificationSeverity, notification_manager

    before = len(notification_manager.records)
    good = corpus_dir / "fiji-java_2d_dataset_v4.ome.zarr"
    assert main(["view", str(tmp_path / "missing.ome.zarr"), str(good)]) == 0
    (viewer,) = no_event_loop
    assert [layer.name for layer in viewer.layers] == ["image"]

    def errors() -> list[str]:
        records = notification_manager.records[before:]
        return [n.message for n in records if n.severity == NotificationSeverity.ERROR]

    viewer.window.show()  # napari.run shows it; the message waits for the window
    qtbot.waitUntil(lambda: len(errors()) == 1, timeout=5000)
    assert errors()[0].startswith(f"Cannot open {tmp_path / 'missing.ome.zarr'}")
