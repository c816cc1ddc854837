"""Open an HCS plate over HTTP with latency: our reader and napari-ome-zarr, in one run.

    .venv/bin/python benchmarks/plates.py                    # 16 x 24 wells, 4 fields, 2 channels
    .venv/bin/python benchmarks/plates.py --rows 4 --columns 6 --repeat 1   # a quick look

A plate (NGFF 0.5 and 0.4, written once into the work folder with our `write_plate`:
fields of (2, SIZE, SIZE) uint16, a 3-level pyramid, (1, 256, 256) chunks) is served by
`latency_server.py` (a separate process adding `--delay` to every request and logging
them). Each case runs in a fresh interpreter:

- `open`: `get_reader(url)(url)` until the layer data is returned, after a warm-up open of
  a tiny store over the same server and a unit lookup (imports, plugin start-up and
  napari's unit registry, which a session loads once with its first layer, are not
  timed); then the
  first view, what napari reads when the whole plate is on screen: field 0 of every well
  in the smallest level, for every channel; then a few fields of random wells at full
  resolution through the layer data, checked pixel for pixel against the files.
- `viewer`: `viewer.open(url)` in a shown napari viewer (Xvfb): time to the first frame
  and to the last one once the canvas is quiet (see `opening.viewer`).

Requests, 404s and bytes come from the server's log. Results: `--out`/plates.json and
plates.md; docs/benchmarks.md has the figures and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import environment  # noqa: E402

TOOLS = ("ours", "napari-ome-zarr")
METADATA = ("zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata")


def row_names(n: int) -> list[str]:
    """A, B, ... Z, AA, AB, ... as plates name their rows."""
    names = []
    for i in range(n):
        name, k = "", i
        while True:
            name = chr(ord("A") + k % 26) + name
            k = k // 26 - 1
            if k < 0:
                break
        names.append(name)
    return names


def field_data(well: int, field: int, size: int) -> np.ndarray:
    """Field `field` of well number `well`: a smooth pattern that tells fields apart."""
    y, x = np.mgrid[0:size, 0:size]
    base = 1000 * (well % 50) + 100 * field
    ch0 = base + (np.sin(x / 17.0 + well) * 40 + np.cos(y / 23.0 + field) * 40).astype(np.int64)
    ch1 = base + 50 + ((x + y + field) % 97)
    return np.stack([ch0, ch1]).astype("uint16")


def make_plate(path: Path, version: str, rows: int, columns: int, fields: int, size: int) -> Path:
    """The benchmark plate, written with our writer (once; kept in the work folder)."""
    from napari_omezarr_x.model import Channel
    from napari_omezarr_x.write import FieldSpec, WellSpec, write_plate

    if (path / ("zarr.json" if version == "0.5" else ".zattrs")).exists():
        return path
    names, cols = row_names(rows), [str(c + 1) for c in range(columns)]
    wells = [
        WellSpec(
            names[r],
            cols[c],
            [FieldSpec(field_data(r * columns + c, f, size)) for f in range(fields)],
        )
        for r in range(rows)
        for c in range(columns)
    ]
    write_plate(
        path,
        wells,
        rows=names,
        columns=cols,
        name="benchmark plate",
        axes="cyx",
        units=[None, "micrometer", "micrometer"],
        scale=[1.0, 0.65, 0.65],
        channels=[
            Channel(label="DNA", color="0000FF", start=0, end=60000),
            Channel(label="actin", color="00FF00", start=0, end=60000),
        ],
        version=version,
        chunks=(1, 256, 256),
        levels=3,
    )
    return path


def server_stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/__stats__") as response:
        return json.loads(response.read())


def delta(after: dict, before: dict) -> dict:
    """Requests between two stats snapshots: counts, metadata vs chunk reads, bytes."""
    log = after["log"][len(before["log"]) :]
    metadata = sum(1 for path, *_ in log if path.rsplit("/", 1)[-1] in METADATA)
    return {
        "requests": after["requests"] - before["requests"],
        "not_found": after["not_found"] - before["not_found"],
        "bytes": after["bytes_sent"] - before["bytes_sent"],
        "metadata_requests": metadata,
        "chunk_requests": len(log) - metadata,
    }


def _reader(tool: str):
    if tool == "ours":
        from napari_omezarr_x._napari.reader import get_reader

        return get_reader
    from napari_ome_zarr._reader import napari_get_reader

    return napari_get_reader


def _levels(data) -> list:
    return list(data) if isinstance(data, list | tuple) else [data]


def open_case(tool: str, url: str, params: dict) -> dict:
    """Open, first view and field checks for one reader (in this fresh process)."""
    base = params["base"]
    get_reader = _reader(tool)
    get_reader(params["warmup_url"])(params["warmup_url"])
    # napari's unit registry (pint) loads on its first use in a session (1-2 s here): a
    # napari session has it from its first layer, so the warm-up loads it too.
    from napari.utils.transforms._units import get_units_from_name

    get_units_from_name("micrometer")
    before = server_stats(base)
    start = time.perf_counter()
    layers = get_reader(url)(url)
    open_s = time.perf_counter() - start
    opened = server_stats(base)
    images = [(data, meta) for data, meta, kind in layers if kind == "image"]
    start = time.perf_counter()
    for data, meta in images:
        smallest = _levels(data)[-1]
        axis = meta.get("channel_axis")  # napari splits such a layer into one per channel
        for c in range(smallest.shape[axis]) if axis is not None else [None]:
            index = [0] * (smallest.ndim - 2)  # ours: field 0; theirs: no field axis
            if c is not None:
                index[axis] = c
            np.asarray(smallest[tuple(index)])
    first_view_s = time.perf_counter() - start
    viewed = server_stats(base)
    record = {
        "open_s": open_s,
        "layers": len(layers),
        "layer_shapes": [list(_levels(d)[0].shape) for d, _ in images],
        "open_http": delta(opened, before),
        "first_view_s": first_view_s,
        "first_view_http": delta(viewed, opened),
    }
    if tool == "ours":
        record.update(check_fields(images, params))
    return record


def check_fields(images: list, params: dict) -> dict:
    """Full-resolution tiles of random (well, field) pairs read through the layer data,
    compared pixel for pixel with the files; the time and requests they took."""
    import zarr

    rng = np.random.default_rng(7)
    rows, columns, fields, size = (params[k] for k in ("rows", "columns", "fields", "size"))
    names = row_names(rows)
    picks = [
        (int(rng.integers(rows)), int(rng.integers(columns)), int(rng.integers(fields)))
        for _ in range(params.get("checks", 6))
    ]
    base = params["base"]
    before = server_stats(base)
    start = time.perf_counter()
    ok = True
    for r, c, f in picks:
        local = zarr.open_array(Path(params["local"]) / names[r] / str(c + 1) / str(f) / "0")
        for channel, (data, _) in enumerate(images):
            level0 = _levels(data)[0]
            tile = np.asarray(level0[f, r * size : (r + 1) * size, c * size : (c + 1) * size])
            ok = ok and np.array_equal(tile, local[channel])
    return {
        "fields_checked": len(picks),
        "fields_match": bool(ok),
        "fields_s": time.perf_counter() - start,
        "fields_http": delta(server_stats(base), before),
    }


def viewer_case(tool: str, url: str, params: dict) -> dict:
    """First frame in a shown viewer (opening.viewer), with the requests it made."""
    import opening

    before = server_stats(params["base"])
    record = opening.viewer(tool, url, {**params, "warmup_dir": params["warmup_dir"]})
    record["http"] = delta(server_stats(params["base"]), before)
    return record


def run_case(spec_json: str) -> None:
    spec = json.loads(spec_json)
    function = viewer_case if spec["area"] == "viewer" else open_case
    record = {**spec}
    try:
        record.update(function(spec["tool"], spec["url"], spec["params"]))
        record["ok"] = True
    except Exception as exc:
        import traceback

        traceback.print_exc()
        record.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    print("RESULT " + json.dumps(record), flush=True)


def markdown(env: dict, records: list[dict]) -> str:
    lines = [
        f"Plate {env['plate']}; latency {env['delay_s'] * 1000:.0f} ms per request; "
        f"load average {env['load_before']} before, {env['load']} after.",
        "",
        "| NGFF | reader | run | open (s) | requests at open (metadata / chunks) | first view "
        "(s) | first view requests | fields match |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if r["area"] != "open":
            continue
        if not r.get("ok"):
            lines.append(f"| {r['ngff']} | {r['tool']} | {r['run']} | failed: {r['error']} |")
            continue
        o, v = r["open_http"], r["first_view_http"]
        match = {True: "yes", False: "**no**"}.get(r.get("fields_match"), "-")
        lines.append(
            f"| {r['ngff']} | {r['tool']} | {r['run']} | {r['open_s']:.2f} | {o['requests']} "
            f"({o['metadata_requests']} / {o['chunk_requests']}) | {r['first_view_s']:.2f} | "
            f"{v['requests']} | {match} |"
        )
    viewers = [r for r in records if r["area"] == "viewer"]
    if viewers:
        lines += [
            "",
            "| NGFF | reader | run | open call (s) | first frame (s) | settled (s) | requests |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in viewers:
            if not r.get("ok"):
                lines.append(f"| {r['ngff']} | {r['tool']} | {r['run']} | failed |")
                continue
            lines.append(
                f"| {r['ngff']} | {r['tool']} | {r['run']} | {r['open_call_s']:.2f} | "
                f"{r['first_frame_s']:.2f} | {r['settled_frame_s']:.2f} | "
                f"{r['http']['requests']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--columns", type=int, default=24)
    parser.add_argument("--fields", type=int, default=4)
    parser.add_argument("--size", type=int, default=512, help="field height and width")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds added per request")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case")
    parser.add_argument("--versions", default="0.5,0.4")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--no-viewer", action="store_true", help="skip the napari viewer cases")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/napari-omezarr-x-plates"))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    if args.case:
        run_case(args.case)
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    env_before = environment()
    shape = f"{args.rows}x{args.columns}x{args.fields}-{args.size}"
    plates = {}
    for version in args.versions.split(","):
        path = args.workdir / f"plate-{shape}-{version}.ome.zarr"
        start = time.perf_counter()
        make_plate(path, version, args.rows, args.columns, args.fields, args.size)
        print(f"plate {path.name} ready in {time.perf_counter() - start:.1f} s", flush=True)
        plates[version] = path
    import opening

    opening.tiny_store(args.workdir)
    server = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "latency_server.py"),
            str(args.workdir),
            "--delay",
            str(args.delay),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    records = []
    env = dict(os.environ)
    env.setdefault("NAPARI_CONFIG", str(args.workdir / "napari-settings.yaml"))
    try:
        base = f"http://127.0.0.1:{int(server.stdout.readline())}"
        areas = ["open"] + ([] if args.no_viewer else ["viewer"])
        for run in range(1, args.repeat + 1):
            for version, path in plates.items():
                for tool in args.tools.split(","):
                    for area in areas:
                        spec = {
                            "area": area,
                            "tool": tool,
                            "ngff": version,
                            "run": run,
                            "url": f"{base}/{path.name}",
                            "params": {
                                "base": base,
                                "warmup_url": f"{base}/warmup.ome.zarr",
                                "warmup_dir": str(args.workdir),
                                "local": str(path),
                                "rows": args.rows,
                                "columns": args.columns,
                                "fields": args.fields,
                                "size": args.size,
                            },
                        }
                        command = [sys.executable, __file__, "--case", json.dumps(spec)]
                        if area == "viewer" and not os.environ.get("DISPLAY"):
                            command = ["xvfb-run", "-a", "-s", "-screen 0 1400x900x24", *command]
                        proc = subprocess.run(
                            command, capture_output=True, text=True, env=env, timeout=900
                        )
                        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                        record = (
                            json.loads(lines[-1][7:])
                            if lines
                            else {**spec, "ok": False, "error": proc.stderr[-800:]}
                        )
                        records.append(record)
                        summary = (
                            f"open {record['open_s']:.2f} s"
                            if area == "open" and record.get("ok")
                            else f"first frame {record['first_frame_s']:.2f} s"
                            if record.get("ok")
                            else f"FAILED {record.get('error', '')[-300:]}"
                        )
                        print(f"[run {run}] {version} {tool:16s} {area:6s} {summary}", flush=True)
    finally:
        server.terminate()
        server.wait(10)
    info = environment()
    info.update(
        load_before=env_before["load"],
        plate=f"{args.rows} x {args.columns} wells, {args.fields} fields of (2, {args.size}, "
        f"{args.size}) uint16, 3 levels",
        delay_s=args.delay,
        command=sys.argv,
    )
    (args.out / "plates.json").write_text(json.dumps({"env": info, "records": records}, indent=1))
    (args.out / "plates.md").write_text(markdown(info, records))
    print((args.out / "plates.md").read_text())
    return 0 if all(r.get("ok") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
