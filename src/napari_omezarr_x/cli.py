"""The `napari-omezarr-x` command: validate, info, convert, sample and view.

Exit codes: 0 success (valid), 1 invalid store or failed conversion, 2 usage error or a
path that cannot be read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from .errors import MissingDependencyError, OmeZarrXError, StoreAccessError, TargetExistsError

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _shape(text: str) -> tuple[int, ...]:
    """Parse `64,256,256` (or `64x256x256`) into a tuple of positive ints."""
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError as exc:
        message = f"expected integers like 1,64,256,256, got {text!r}"
        raise argparse.ArgumentTypeError(message) from exc
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="napari-omezarr-x",
        description="Validate, inspect, convert and view OME-Zarr (OME-NGFF 0.1 to 0.6-dev).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    where = "folder, .zip file, http(s):// or s3:// / gs:// / az:// URL of the store"
    p = sub.add_parser("validate", help="check a store against the OME-NGFF specification")
    p.add_argument("path", help=where)
    p.add_argument("--strict", action="store_true", help="also enforce recommendations")
    p.add_argument(
        "--metadata-only", action="store_true", help="check metadata only, not the arrays"
    )
    p.add_argument(
        "--data",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read and decode every chunk (default: on for folders and zips, off for URLs)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("info", help="print the groups, arrays and images of a store")
    p.add_argument("path", help=where)
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("convert", help="convert an image (TIFF, PNG, OME-Zarr, ...) to OME-Zarr")
    p.add_argument("input", help="image file or OME-Zarr store (folder, zip or URL)")
    p.add_argument("output", help="OME-Zarr to write: a folder or an s3:// / gs:// / az:// URL")
    p.add_argument("--version", choices=("0.4", "0.5"), default="0.5", help="NGFF version")
    p.add_argument("--chunks", type=_shape, help="chunk shape, e.g. 1,64,256,256")
    p.add_argument("--shards", type=_shape, help="shard shape (NGFF 0.5 / zarr v3 only)")
    p.add_argument("--levels", type=int, help="number of pyramid levels (default: automatic)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OME-Zarr")
    cluster = p.add_mutually_exclusive_group()
    cluster.add_argument(
        "--scheduler", metavar="ADDRESS", help="run on this dask scheduler (tcp://host:8786)"
    )
    cluster.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run on a local dask cluster of N worker processes",
    )

    sub.add_parser("sample", help="open napari with the built-in sample")
    p = sub.add_parser("view", help="open OME-Zarr stores in napari")
    p.add_argument("paths", nargs="*", help="stores to open")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    commands = {
        "validate": _validate,
        "info": _info,
        "convert": _convert,
        "sample": _sample,
        "view": _view,
    }
    try:
        return commands[args.command](args)
    except (StoreAccessError, MissingDependencyError) as exc:
        print(f"napari-omezarr-x {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OmeZarrXError, ValueError) as exc:
        print(f"napari-omezarr-x {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INVALID


def _validate(args: argparse.Namespace) -> int:
    from .spec.schemas import schemas_source
    from .spec.validate import validate_store

    bar = _ProgressBar(label="reading chunks")
    try:
        report = validate_store(
            args.path,
            strict=args.strict,
            metadata_only=args.metadata_only,
            data=args.data,
            progress=bar,
        )
    except StoreAccessError as exc:
        bar.close()
        if args.json:
            error = {"location": args.path, "message": str(exc)}
            print(json.dumps({"valid": False, "version": None, "errors": [error], "warnings": []}))
        raise
    bar.close(complete=True)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        verdict = "valid" if report.valid else "INVALID"
        version = f"OME-NGFF {report.version}" if report.version else "OME-NGFF (no version)"
        mode = " (strict)" if args.strict else ""
        print(f"{args.path}: {verdict} {version}{mode}")
        if report.schema is not None:
            source = schemas_source()
            print(f"  checked against the OME-NGFF {report.schema} JSON schemas ({source})")
        for issue in report.errors:
            print(f"  error: {issue}")
        for issue in report.warnings:
            print(f"  warning: {issue}")
        print(f"{len(report.errors)} errors, {len(report.warnings)} warnings")
    return EXIT_OK if report.valid else EXIT_INVALID


def _info(args: argparse.Namespace) -> int:
    from .info import describe_store, format_tree

    info = describe_store(args.path)
    print(json.dumps(info.to_dict(), indent=2) if args.json else format_tree(info))
    return EXIT_OK


def _convert(args: argparse.Namespace) -> int:
    from .convert import convert

    bar = _ProgressBar()
    try:
        with _cluster(args.scheduler, args.workers) as scheduler:
            out = convert(
                args.input,
                args.output,
                version=args.version,
                chunks=args.chunks,
                shards=args.shards,
                levels=args.levels,
                overwrite=args.overwrite,
                progress=bar,
                scheduler=scheduler,
            )
    except TargetExistsError as exc:
        bar.close()
        raise TargetExistsError(exc.target, "use --overwrite") from None
    bar.close(complete=True)
    print(f"wrote {out}")
    return EXIT_OK


@contextlib.contextmanager
def _cluster(address: str | None, workers: int | None) -> Iterator[Any]:
    """A scheduler address as given, or a local cluster of `workers` processes, or None."""
    if workers is None:
        yield address
        return
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise MissingDependencyError(
            "--workers needs distributed: pip install 'napari-omezarr-x[cluster]'"
        ) from exc
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with (
        LocalCluster(n_workers=workers, processes=True, dashboard_address=None) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


class _ProgressBar:
    """A text progress bar on stderr, fed by the writer's `progress(done, total)` callback.

    It redraws only when the shown text changes, so a write of many thousand blocks
    does not flood the terminal.
    """

    def __init__(self, width: int = 40, label: str = "") -> None:
        self.width = width
        self.label = f"{label} " if label else ""
        self.text = ""

    def __call__(self, done: float, total: float | None = None) -> None:
        fraction = done / total if total else float(done)
        fraction = min(max(fraction, 0.0), 1.0)
        filled = round(fraction * self.width)
        bar = f"[{'#' * filled}{'-' * (self.width - filled)}]"
        text = f"\r{self.label}{bar} {fraction * 100:5.1f}%"
        if text != self.text:
            self.text = text
            sys.stderr.write(text)
            sys.stderr.flush()

    def close(self, *, complete: bool = False) -> None:
        """End the bar's line (drawn full first when the write finished)."""
        if not self.text:
            return
        if complete:
            self(1, 1)
        sys.stderr.write("\n")
        sys.stderr.flush()


def _sample(args: argparse.Namespace) -> int:
    from ._napari.sample import show_sample

    show_sample()
    return EXIT_OK


def _view(args: argparse.Namespace) -> int:
    import napari  # noqa: TID251 - only this command needs napari; imported on use

    from ._napari.reader import notify_error

    viewer = napari.Viewer()
    for path in args.paths:
        try:
            viewer.open(path, plugin="napari-omezarr-x")
        except Exception as exc:  # the window stays up: one bad store must not close it
            logging.getLogger(__name__).warning("cannot open %s", path, exc_info=True)
            notify_error(f"Cannot open {path}: {exc}")
    napari.run()
    return EXIT_OK
