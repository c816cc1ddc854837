"""Benchmark napari-omezarr-x against ome-zarr-py, ngff-zarr and napari-ome-zarr.

One command runs every case, each in its own subprocess (so peak RSS is per tool), on a
deterministic synthetic volume generated once into the work folder:

    .venv/bin/python benchmarks/run.py --quick        # a few minutes
    .venv/bin/python benchmarks/run.py                # (2, 128, 2048, 2048) uint16, 2 GiB
    .venv/bin/python benchmarks/run.py --repeat 3     # every case 3 times, interleaved

Results go to ``--out`` as ``results.json`` (one record per case) and ``results.md`` (tables).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import labels_edit  # noqa: E402
import remote  # noqa: E402
import volumes  # noqa: E402
from report import environment, markdown  # noqa: E402

DEFAULT_SIZE = (2, 128, 2048, 2048)
QUICK_SIZE = (2, 64, 1024, 1024)
AREAS = (
    "save",
    "labels",
    "memory",
    "open",
    "viewer",
    "http",
    "s3",
    "labels-edit",
    "remote",
    "read",
)

# "ours" runs with the engine as shipped (zarrs where installed); "-zarr-python" with the
# switch off. The limits encode what ours-0.5 wrote (every level) or the input (level 0).
IMAGE_CASES = [
    ("ours-0.5", "ours", {"version": "0.5"}),
    ("ours-0.5-zarr-python", "ours", {"version": "0.5", "engine": "zarr-python"}),
    ("ours-0.4", "ours", {"version": "0.4"}),
    ("ours-0.5-sharded", "ours", {"version": "0.5", "sharded": True}),
    ("ours-0.5-defaults", "ours", {"version": "0.5", "defaults": True}),
    ("ome-zarr-py-0.5", "ome-zarr-py", {"version": "0.5"}),
    ("ngff-zarr-0.4", "ngff-zarr", {"version": "0.4"}),
    ("ngff-zarr-0.5", "ngff-zarr", {"version": "0.5"}),
    ("zarr-ceiling", "zarr-ceiling", {}),
    ("zarrs-ceiling", "zarr-ceiling", {"engine": "zarrs"}),
    ("blosc-limit", "blosc-limit", {"pyramid_of": "ours-0.5"}),
    ("blosc-limit-level0", "blosc-limit", {}),
]
LABEL_CASES = [
    ("ours-0.5", "ours", {"version": "0.5"}),
    ("ours-0.5-zarr-python", "ours", {"version": "0.5", "engine": "zarr-python"}),
    ("ome-zarr-py-0.5", "ome-zarr-py", {"version": "0.5"}),
    ("ngff-zarr-0.5", "ngff-zarr", {"version": "0.5"}),
    ("zarr-ceiling", "zarr-ceiling", {}),
    ("blosc-limit", "blosc-limit", {"pyramid_of": "ours-0.5"}),
    ("blosc-limit-level0", "blosc-limit", {}),
]
# Readers of the read area; blosc-limit decodes the chunks their reads touch.
READ_TOOLS = ("ours", "napari-ome-zarr", "ome-zarr-py", "zarr-python", "zarrs", "blosc-limit")
VIEWER_TOOLS = ("ours", "napari-ome-zarr")
# The stores the read area reads: our default chunking, and deep z chunks (1, 64, 256, 256).
READ_STORES = {"default": "ours-0.5-defaults", "deep-z": "ours-0.5"}
MEMORY_TOOLS = [("ours-0.5", "ours", {"version": "0.5"}), ("ome-zarr-py-0.5", "ome-zarr-py", {})]
READERS = ("ours", "napari-ome-zarr")
# Save outputs kept for the open cases (ours first, ome-zarr-py while ours is missing).
KEPT = ("ours-0.5", "ome-zarr-py-0.5", "ours-0.5-defaults")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"use size {QUICK_SIZE}")
    parser.add_argument(
        "--size",
        type=lambda s: tuple(int(v) for v in s.split(",")),
        help=f"image shape c,z,y,x (labels use z,y,x); default {DEFAULT_SIZE}",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    parser.add_argument("--workdir", type=Path, help="where inputs and outputs are written")
    parser.add_argument(
        "--areas", default=",".join(AREAS), help=f"comma-separated subset of {','.join(AREAS)}"
    )
    parser.add_argument(
        "--only",
        default="",
        help="only these cases: comma-separated CASE or AREA/CASE (e.g. labels/ours-0.5)",
    )
    parser.add_argument("--delay", type=float, default=0.02, help="HTTP latency per request (s)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per case")
    parser.add_argument(
        "--edit-size",
        type=lambda s: tuple(int(v) for v in s.split(",")),
        help=f"labels-edit shape z,y,x; default {labels_edit.SHAPE} "
        f"({labels_edit.QUICK_SHAPE} with --quick)",
    )
    parser.add_argument(
        "--full-rewrite",
        action="store_true",
        help="labels-edit: also time a full rewrite of the edited labels (minutes at full size)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record save cases with py-spy into --out (adds overhead)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of every case, interleaved; tables show each case's fastest round",
    )
    args = parser.parse_args(argv)
    args.size_given = args.size is not None
    args.size = args.size or (QUICK_SIZE if args.quick else DEFAULT_SIZE)
    args.edit_size = args.edit_size or (
        labels_edit.QUICK_SHAPE if args.quick else labels_edit.SHAPE
    )
    if len(args.size) != 4:
        parser.error("--size needs four integers: c,z,y,x")
    args.areas = [a for a in args.areas.split(",") if a]
    unknown = set(args.areas) - set(AREAS)
    if unknown:
        parser.error(f"unknown areas {sorted(unknown)}; choose from {AREAS}")
    return args


class Runner:
    """Runs cases in subprocesses and collects their records."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = args.workdir or Path(tempfile.gettempdir()) / "napari-omezarr-x-bench"
        self.outdir = self.workdir / "out"
        self.records: list[dict] = []
        self.round = 0
        self.env = dict(os.environ)
        self.env.setdefault("NAPARI_CONFIG", str(self.workdir / "napari-settings.yaml"))

    def wanted(self, area: str, case: str) -> bool:
        """Whether --only names this case, as CASE (any area) or AREA/CASE."""
        only = [name for name in self.args.only.split(",") if name]
        return not only or case in only or f"{area}/{case}" in only

    def run(
        self, spec: dict, wrap: list[str] | None = None, env: dict[str, str] | None = None
    ) -> dict:
        """Run one case in a fresh interpreter; the record says ok=False if it failed."""
        self.outdir.mkdir(parents=True, exist_ok=True)
        stem = self.outdir / f"{spec['area']}-{spec['case']}"
        spec_path, result_path = Path(f"{stem}.spec.json"), Path(f"{stem}.result.json")
        spec_path.write_text(json.dumps(spec))
        result_path.unlink(missing_ok=True)
        command = [*(wrap or []), sys.executable, str(HERE / "worker.py")]
        command += [str(spec_path), str(result_path)]
        print(f"[{time.strftime('%H:%M:%S')}] {spec['area']:7s} {spec['case']}", flush=True)
        try:
            proc = subprocess.run(
                command,
                env={**self.env, **(env or {})},
                timeout=self.args.timeout,
                capture_output=True,
                text=True,
            )
            failure = proc.stderr[-2000:] if proc.returncode else ""
        except subprocess.TimeoutExpired:
            failure = f"timed out after {self.args.timeout} s"
        if result_path.exists():
            record = json.loads(result_path.read_text())
        else:
            record = {**spec, "ok": False, "error": failure.strip() or "no result written"}
        record["round"] = self.round
        record["load"] = list(os.getloadavg())
        if not record.get("ok"):
            print(f"    FAILED: {record.get('error', failure)[-600:]}", flush=True)
        self.records.append(record)
        return record

    def save(self, area: str, case: str, tool: str, kind: str, src: str, params: dict) -> dict:
        out = self.outdir / f"{area}-{case}.ome.zarr"
        shutil.rmtree(out, ignore_errors=True)
        spec = {"area": area, "case": case, "tool": tool, "kind": kind, "src": src}
        spec.update(out=str(out), params=params)
        wrap = None
        if self.args.profile:
            profile = self.args.out / f"profile-{area}-{case}.txt"
            py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            wrap = [py_spy, "record", "--format", "raw", "-r", "50"]
            wrap += ["-o", str(profile), "--"]
        return self.run(spec, wrap)


def ensure_inputs(workdir: Path, size: tuple[int, ...]) -> dict[str, str]:
    """The input volumes, generated in a child process when missing.

    A child started by fork inherits its parent's peak RSS, so generating the
    inputs in this process would inflate every case's recorded peak.
    """
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(volumes.ensure_inputs, workdir, size).result()


def scaled(size: tuple[int, ...], factor: float) -> tuple[int, ...]:
    """The size with z scaled by factor (at least 1)."""
    return (size[0], max(1, round(size[1] * factor)), *size[2:])


def run_saves(runner: Runner, inputs: dict[str, str]) -> None:
    """Image saves, label saves and the memory-versus-input-size saves."""
    areas = runner.args.areas
    for area, kind, cases in (("save", "image", IMAGE_CASES), ("labels", "labels", LABEL_CASES)):
        if area not in areas:
            continue
        for case, tool, params in cases:
            if not runner.wanted(area, case):
                continue
            if "pyramid_of" in params:
                params = {**params, "pyramid_of": str(_out(runner, area, params["pyramid_of"]))}
            runner.save(area, case, tool, kind, inputs[kind], params)
            if case != "ours-0.5" and (area == "labels" or case not in KEPT):
                shutil.rmtree(_out(runner, area, case), ignore_errors=True)
        if area == "labels":
            shutil.rmtree(_out(runner, area, "ours-0.5"), ignore_errors=True)
    if "memory" in areas:
        for factor in (0.5, 2.0):
            size = scaled(runner.args.size, factor)
            scaled_inputs = ensure_inputs(runner.workdir, size)
            for case, tool, params in MEMORY_TOOLS:
                name = f"{case}-x{factor:g}"
                if runner.wanted("memory", name):
                    params = {**params, "input_factor": factor}
                    runner.save("memory", name, tool, "image", scaled_inputs["image"], params)
                    shutil.rmtree(_out(runner, "memory", name), ignore_errors=True)


def _out(runner: Runner, area: str, case: str) -> Path:
    return runner.outdir / f"{area}-{case}.ome.zarr"


def open_store_for(runner: Runner, inputs: dict[str, str]) -> Path:
    """The store the open cases read: our 0.5 output, written now if no save case made it."""
    for case, tool in (("ours-0.5", "ours"), ("ome-zarr-py-0.5", "ome-zarr-py")):
        store = _out(runner, "save", case)
        if (store / "zarr.json").exists():
            return store
        record = runner.save("save", case, tool, "image", inputs["image"], {"version": "0.5"})
        runner.records.remove(record)
        if record.get("ok"):
            return store
    raise RuntimeError("neither our writer nor ome-zarr-py could write a store to open")


def run_opens(runner: Runner, store: Path) -> None:
    """Reader, viewer and HTTP open cases for both reader plugins."""
    areas = runner.args.areas
    warmup = str(runner.outdir)
    for tool in READERS:
        if "open" in areas and runner.wanted("open", tool):
            spec = {"area": "open", "case": tool, "tool": tool, "store": str(store)}
            runner.run({**spec, "params": {"source": store.name, "warmup_dir": warmup}})
        if "viewer" in areas and runner.wanted("viewer", tool):
            wrap = (
                []
                if os.environ.get("DISPLAY")
                else ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24"]
            )
            spec = {"area": "viewer", "case": tool, "tool": tool, "store": str(store)}
            params = {"source": store.name, "warmup_dir": warmup}
            runner.run({**spec, "params": params}, wrap)
    if "http" in areas:
        server = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "latency_server.py"),
                str(store.parent),
                "--delay",
                str(runner.args.delay),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            port = int(server.stdout.readline())
            base = f"http://127.0.0.1:{port}"
            for tool in READERS:
                if runner.wanted("http", tool):
                    params = {
                        "source": store.name,
                        "delay_s": runner.args.delay,
                        "stats_url": f"{base}/__stats__",
                        "local_store": str(store),
                        "warmup_dir": warmup,
                        "warmup_url": f"{base}/warmup.ome.zarr",
                    }
                    spec = {"area": "http", "case": tool, "tool": tool}
                    runner.run({**spec, "store": f"{base}/{store.name}", "params": params})
        finally:
            server.terminate()
            server.wait(10)
    if "s3" in areas:
        run_s3_opens(runner, store)


def run_s3_opens(runner: Runner, store: Path) -> None:
    """Both reader plugins on the same s3:// URL of a local S3 server (moto)."""
    import opening
    import s3_server

    warmup = opening.tiny_store(runner.outdir)
    server = subprocess.Popen(
        [sys.executable, str(HERE / "s3_server.py"), str(store.parent), store.name, warmup.name],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = server.stdout.readline().strip()
        env = s3_server.environment(endpoint)
        for tool in READERS:
            if runner.wanted("s3", tool):
                params = {
                    "source": store.name,
                    "local_store": str(store),
                    "warmup_dir": str(runner.outdir),
                    "warmup_url": f"s3://{s3_server.BUCKET}/{warmup.name}",
                }
                spec = {"area": "s3", "case": tool, "tool": tool}
                url = f"s3://{s3_server.BUCKET}/{store.name}"
                runner.run({**spec, "store": url, "params": params}, env=env)
    finally:
        server.terminate()
        server.wait(10)


def run_label_edits(runner: Runner) -> None:
    """The labels-edit area: one stroke saved in place, against its ceiling and peers."""
    shape = runner.args.edit_size
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        store = pool.submit(labels_edit.ensure_store, runner.workdir, shape).result()
    cases = [*labels_edit.CASES]
    if runner.args.full_rewrite:
        cases.append(labels_edit.FULL_REWRITE)
    for case in cases:
        if not runner.wanted("labels-edit", case):
            continue
        params = {"shape": list(shape), "out": str(runner.outdir / "labels-edit")}
        spec = {"area": "labels-edit", "case": case, "tool": case.split("-")[0], "store": store}
        wrap = None
        if case == "ours-napari" and not os.environ.get("DISPLAY"):
            wrap = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24"]
        runner.run({**spec, "params": params}, wrap)


def read_store(runner: Runner, inputs: dict[str, str], case: str) -> Path:
    """A store the read area reads: a kept save output, written now (untimed) if missing."""
    store = _out(runner, "save", case)
    if not (store / "zarr.json").exists():
        params = dict(next(p for c, _, p in IMAGE_CASES if c == case))
        record = runner.save("save", case, "ours", "image", inputs["image"], params)
        runner.records.remove(record)
        if not record.get("ok"):
            raise RuntimeError(f"could not write the {case} store to read: {record['error']}")
    return store


def run_reads(runner: Runner, inputs: dict[str, str]) -> None:
    """One plane, a 10-plane scrub and the lowest level per reader and chunking."""
    warmup = str(runner.outdir)
    wrap = [] if os.environ.get("DISPLAY") else ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24"]
    for chunking, case in READ_STORES.items():
        store = None
        for area, tools in (("read", READ_TOOLS), ("read-viewer", VIEWER_TOOLS)):
            for tool in tools:
                name = f"{tool}-{chunking}"
                if not runner.wanted(area, name):
                    continue
                store = store or read_store(runner, inputs, case)
                params = {"chunking": chunking, "warmup_dir": warmup}
                spec = {"area": area, "case": name, "tool": tool, "store": str(store)}
                runner.run({**spec, "params": params}, wrap if area == "read-viewer" else None)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runner = Runner(args)
    args.out.mkdir(parents=True, exist_ok=True)
    env_before = environment()
    start = time.perf_counter()
    generation_s = 0.0
    if set(args.areas) - {"labels-edit", "remote"}:  # these two make stores of their own
        print(f"inputs {args.size} in {runner.workdir}", flush=True)
        inputs = ensure_inputs(runner.workdir, args.size)
        generation_s = time.perf_counter() - start
        for round_ in range(args.repeat):
            runner.round = round_
            run_saves(runner, inputs)
            if "read" in args.areas:
                run_reads(runner, inputs)
            if {"open", "viewer", "http", "s3"} & set(args.areas):
                run_opens(runner, open_store_for(runner, inputs))
    if "labels-edit" in args.areas:
        run_label_edits(runner)
    if "remote" in args.areas:
        # Our default chunks on 2048 x 2048 planes (16 chunks a plane), unless --size is given.
        shape = (2, 16 if args.quick else 64, *remote.PLANE)
        store = remote.ensure_store(runner.workdir, args.size if args.size_given else shape)
        remote.run_remote(runner, store, READERS)
    env = environment()
    env["load_before"] = env_before["load"]
    env.update(size=list(args.size), input_generation_s=generation_s, command=sys.argv)
    env["total_s"] = time.perf_counter() - start
    (args.out / "results.json").write_text(
        json.dumps({"env": env, "records": runner.records}, indent=1)
    )
    (args.out / "results.md").write_text(markdown([env], runner.records))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    return 0 if all(r.get("ok") for r in runner.records) else 1


if __name__ == "__main__":
    sys.exit(main())
