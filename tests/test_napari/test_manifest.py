"""The npe2 manifest is valid and every command it names can be imported."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
from npe2 import PluginManifest

MANIFEST = PluginManifest.from_distribution("napari-omezarr-x")


def test_manifest_validates_with_imports() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-omezarr-x", "--imports"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("command", MANIFEST.contributions.commands, ids=lambda c: c.id)
def test_command_resolves(command) -> None:
    module_name, _, attr = command.python_name.partition(":")
    assert callable(getattr(importlib.import_module(module_name), attr))


def test_contributions_are_the_advertised_ones() -> None:
    contributions = MANIFEST.contributions
    assert [s.display_name for s in contributions.sample_data] == ["Cells 3D (OME-Zarr)"]
    assert [w.display_name for w in contributions.widgets] == [
        "Channel settings",
        "Labels editing",
        "Plate browser",
        "Series",
    ]
    assert contributions.readers
    assert contributions.readers[0].accepts_directories
    assert {ext for w in contributions.writers for ext in w.filename_extensions} == {
        ".ome.zarr",
        ".zarr",
    }
