"""The benchmark script still runs end to end and writes complete records.

Timing is never asserted here (speed is measured by benchmarks/run.py, not by tests); this
only keeps the script from rotting as the writer's API evolves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"

SAVE_FIELDS = {
    "case",
    "tool",
    "version",
    "wall_s",
    "mb_per_s",
    "input_bytes",
    "peak_rss_mb",
    "peak_delta_mb",
    "bytes_written",
    "files_written",
    "levels",
}


def test_run_writes_a_complete_record_for_our_writer(tmp_path: Path) -> None:
    out = tmp_path / "results"
    command = [sys.executable, str(RUN), "--size", "2,4,300,300", "--areas", "save"]
    command += ["--only", "ours-0.5", "--out", str(out), "--workdir", str(tmp_path / "work")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    results = json.loads((out / "results.json").read_text())
    (record,) = results["records"]
    assert record["ok"], record
    assert not SAVE_FIELDS - record.keys()
    assert record["case"] == "ours-0.5"
    assert record["input_bytes"] == 2 * 4 * 300 * 300 * 2
    assert record["levels"] == 2  # 300 px needs one 2x level to fit a 256 px tile
    assert record["files_written"] > 0
    assert record["bytes_written"] > 0
    assert record["peak_rss_mb"] >= record["peak_delta_mb"] > 0
    assert results["env"]["versions"]["napari-omezarr-x"]
    assert "| ours-0.5 |" in (out / "results.md").read_text()


def test_remote_area_compares_both_readers_behind_the_latency_server(tmp_path: Path) -> None:
    out = tmp_path / "results"
    command = [sys.executable, str(RUN), "--size", "2,4,512,512", "--areas", "remote"]
    command += ["--only", "ours@20ms,napari-ome-zarr@20ms", "--out", str(out)]
    command += ["--workdir", str(tmp_path / "work")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    records = json.loads((out / "results.json").read_text())["records"]
    assert sorted(r["case"] for r in records) == ["napari-ome-zarr@20ms", "ours@20ms"]
    for record in records:
        assert record["ok"], record
        assert record["plane_shape"] == [512, 512]
        assert len(record["z_steps_s"]) == 5
        assert record["open_http"]["requests"] > 0
    table = (out / "results.md").read_text()
    assert "| 20 ms | napari-ome-zarr / ours |" in table


def test_plate_benchmark_runs_and_checks_fields(tmp_path: Path) -> None:
    """benchmarks/plates.py end to end on a tiny plate (our reader only, no viewer)."""
    script = RUN.parent / "plates.py"
    command = [sys.executable, str(script), "--rows", "2", "--columns", "3", "--fields", "2"]
    command += ["--size", "64", "--repeat", "1", "--tools", "ours", "--no-viewer"]
    command += ["--versions", "0.5", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (record,) = json.loads((tmp_path / "plates.json").read_text())["records"]
    assert record["ok"], record
    assert record["fields_match"] is True
    assert record["layer_shapes"] == [[2, 128, 192], [2, 128, 192]]
    # Opening reads metadata only: the plate, 6 wells and the first field.
    assert record["open_http"]["chunk_requests"] == 0
    assert 6 <= record["open_http"]["metadata_requests"] <= 16


def test_limit_and_read_cases_write_complete_records(tmp_path: Path) -> None:
    """blosc's limit rows and the read area (every reader, one chunking) run end to end."""
    out = tmp_path / "results"
    only = "save/ours-0.5,save/blosc-limit,save/blosc-limit-level0"
    only += ",read/ours-deep-z,read/napari-ome-zarr-deep-z,read/ome-zarr-py-deep-z"
    only += ",read/zarr-python-deep-z,read/zarrs-deep-z,read/blosc-limit-deep-z"
    command = [sys.executable, str(RUN), "--size", "2,8,300,300", "--areas", "save,read"]
    command += ["--only", only, "--out", str(out), "--workdir", str(tmp_path / "work")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    records = {
        (r["area"], r["case"]): r for r in json.loads((out / "results.json").read_text())["records"]
    }
    assert all(r["ok"] for r in records.values()), records
    limit, level0 = records["save", "blosc-limit"], records["save", "blosc-limit-level0"]
    assert limit["levels"] == records["save", "ours-0.5"]["levels"] == 2
    assert level0["levels"] == 1
    # Every level encodes more bytes than level 0 alone; the input is 2*8*300*300 uint16.
    assert limit["raw_bytes"] > level0["raw_bytes"] == 2 * 8 * 300 * 300 * 2
    reads = [r for (area, _), r in records.items() if area == "read"]
    assert len(reads) == 6
    for r in reads:
        for op in ("plane", "scrub", "lowest"):
            assert r[op]["s"] > 0
    ours = records["read", "ours-deep-z"]
    # The middle plane of 8 z planes lies in the one z chunk: 2x2 tiles of (1, 8, 256, 256).
    assert ours["plane"]["reads"]["chunk_reads"] == 4
    assert records["read", "blosc-limit-deep-z"]["plane"]["chunks"] == 4
    text = (out / "results.md").read_text()
    assert "| blosc-limit | " in text
    assert "#### deep-z chunks (8, 256, 256)" in text
