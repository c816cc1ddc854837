"""Fixtures shared by the whole suite: where the shared corpus lives, a napari
settings file of the test session's own (never the user's), and the codec
pipeline the suite runs on (`--engine zarrs|zarr-python`, default zarrs)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

# napari reads its settings at import: point it at a throwaway file first.
os.environ.setdefault("NAPARI_CONFIG", str(Path(tempfile.mkdtemp()) / "napari-settings.yaml"))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "corpus"
CONFORMANCE = SHARED / "conformance"


def _manifest() -> list[dict]:
    path = CORPUS / "manifest.json"
    if not path.exists():
        return []
    return json.loads(path.read_text())["datasets"]


CORPUS_DATASETS = _manifest()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--engine",
        choices=("zarrs", "zarr-python"),
        default=None,
        help="codec pipeline for the whole run, subprocesses included "
        "(default: $NAPARI_OMEZARR_X_ENGINE, else zarrs)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Choose the engine before any test opens an array, and say which one runs."""
    from napari_omezarr_x.storage import engine

    chosen = config.getoption("--engine")
    if chosen:
        # Set in the environment too, so the CLI and benchmark subprocesses follow.
        os.environ[engine.ENV] = chosen
    engine.apply()


def pytest_report_header(config: pytest.Config) -> str:
    from napari_omezarr_x.storage import current_engine

    return f"napari-omezarr-x codec engine: {current_engine()}"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared corpus of OME-Zarr stores written by other tools."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present")
    return CORPUS


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """The OME-NGFF specification's own valid/invalid metadata cases."""
    if not CONFORMANCE.is_dir():
        pytest.skip("../shared/conformance is not present")
    return CONFORMANCE


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 with a `private` and a `public` bucket (session-wide)."""
    from s3_helpers import session_server

    yield from session_server()


def _aws_env(monkeypatch, server, folder: Path, *, credentials: bool) -> dict[str, str]:
    from s3_helpers import AWS_VARIABLES

    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = server.environment(folder, credentials=credentials)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3_env(s3_server, monkeypatch, tmp_path_factory):
    """The environment of a user with credentials for the local S3 server."""
    folder = tmp_path_factory.mktemp("aws")
    _aws_env(monkeypatch, s3_server, folder, credentials=True)
    return s3_server


@pytest.fixture
def s3_anon_env(s3_server, monkeypatch, tmp_path_factory):
    """The environment of a user without any AWS credentials (anonymous access)."""
    folder = tmp_path_factory.mktemp("aws")
    _aws_env(monkeypatch, s3_server, folder, credentials=False)
    return s3_server


@pytest.fixture(scope="session")
def dask_cluster():
    """A distributed.LocalCluster of 2 worker processes (session-wide: slow to start)."""
    import logging

    from distributed import LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.fixture
def dask_client(dask_cluster):
    """A Client of the session's LocalCluster, active (the default) for the test."""
    from distributed import Client

    with Client(dask_cluster) as client:
        yield client


@pytest.fixture(params=["sync", "async"])
def slicing(request):
    """napari's default synchronous slicing, or its async slicing (experimental setting)."""
    from napari.settings import get_settings

    settings = get_settings()
    before = settings.experimental.async_
    settings.experimental.async_ = request.param == "async"
    yield request.param
    settings.experimental.async_ = before
