"""Object-store URLs: scheme handling, credentials from the standard places, anonymous
access, and clear errors (missing bucket, denied access, missing packages,
unsupported schemes) against a real S3 server on localhost."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import zarr

from napari_omezarr_x.errors import MissingDependencyError, StoreAccessError
from napari_omezarr_x.read import looks_like_ome_zarr, read_ome_zarr
from napari_omezarr_x.storage import check_scheme, object_store, open_location, url_scheme
from napari_omezarr_x.storage.objects import _aws_profile, _s3_config
from napari_omezarr_x.write import write_image
from s3_helpers import ACCESS_KEY, PRIVATE, PUBLIC, SECRET_KEY


@pytest.mark.parametrize(
    ("text", "scheme"),
    [
        ("s3://bucket/a.zarr", "s3"),
        ("gs://bucket/a.zarr", "gs"),
        ("abfs://c@acct.dfs.core.windows.net/a", "abfs"),
        ("file:///tmp/a.zarr", "file"),
        ("https://host/a.zarr", "https"),
        ("/tmp/a.zarr", None),
        ("relative/a.zarr", None),
        ("C:/data/a.zarr", None),
        ("weird:name.zarr", None),
    ],
)
def test_url_scheme(text, scheme):
    assert url_scheme(text) == scheme


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ftp://host/a.zarr", "'ftp' is not supported"),
        ("hdfs://cluster/a.zarr", "'hdfs' is not supported"),
        ("s3:/bucket/a.zarr", "malformed URL"),
    ],
)
def test_unsupported_urls_are_errors_not_folders(text, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreAccessError, match=message):
        check_scheme(text)
    with pytest.raises(StoreAccessError, match=message):
        read_ome_zarr(text)
    with pytest.raises(StoreAccessError, match=message):
        write_image(text, np.zeros((4, 4), np.uint8))
    assert not looks_like_ome_zarr(text)
    assert list(tmp_path.iterdir()) == []  # no local folder named "s3:" or "ftp:"


def test_missing_obstore_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "obstore", None)
    for url, extra in (("s3://b/a.zarr", "s3"), ("gs://b/a.zarr", "gcs"), ("az://c/a", "azure")):
        with pytest.raises(
            MissingDependencyError, match=rf"pip install 'napari-omezarr-x\[{extra}\]'"
        ):
            object_store(url)


def test_gcs_and_azure_urls_go_through_the_same_door(monkeypatch, tmp_path):
    """No GCS or Azure server runs here: the stores are built (anonymous without
    credentials, as for S3) and Azure without an account is a clear error."""
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "AZURE_STORAGE_ACCOUNT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    store = object_store("gs://bucket/image.zarr")
    assert type(store).__name__ == "GCSStore"
    assert str(store.config.get("skip_signature")).lower() == "true"
    store = object_store("abfs://container@account.dfs.core.windows.net/image.zarr")
    assert type(store).__name__ == "AzureStore"
    with pytest.raises(StoreAccessError, match="AZURE_STORAGE_ACCOUNT_NAME"):
        object_store("az://container/image.zarr")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "account")
    assert type(object_store("az://container/image.zarr")).__name__ == "AzureStore"


def test_s3_credentials_from_profile_files(tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    config, creds = tmp_path / "config", tmp_path / "credentials"
    config.write_text(
        "[default]\nregion = eu-west-1\n"
        "[profile lab]\nregion = eu-central-1\nendpoint_url = http://127.0.0.1:9\n"
    )
    creds.write_text("[lab]\naws_access_key_id = LAB\naws_secret_access_key = SECRET\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_PROFILE", "lab")
    assert _aws_profile("lab")["aws_access_key_id"] == "LAB"
    options, provider = _s3_config({})
    assert provider is None
    assert options["access_key_id"] == "LAB"
    assert options["region"] == "eu-central-1"
    assert options["endpoint"] == "http://127.0.0.1:9"
    assert "skip_signature" not in options
    monkeypatch.setenv("AWS_PROFILE", "default")
    options, _ = _s3_config({})
    assert options["skip_signature"] is True  # no keys anywhere: anonymous, asked for
    assert options["region"] == "eu-west-1"
    options, _ = _s3_config({"anon": False})
    assert "skip_signature" not in options  # the SDK's own chain, by explicit request
    options, _ = _s3_config({"key": "K", "secret": "S", "endpoint_url": "http://h:1"})
    assert (options["access_key_id"], options["endpoint"]) == ("K", "http://h:1")
    assert "skip_signature" not in options


@pytest.fixture(scope="module")
def small_image():
    """The pixels of the small images these tests upload."""
    return np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)


def _upload_image(s3_server, tmp_path, bucket: str, name: str, data) -> str:
    folder = tmp_path / bucket / name
    write_image(folder, data, axes="yx")
    return s3_server.upload(folder, bucket, name)


def test_anonymous_reads_public_and_is_refused_private(s3_anon_env, small_image, tmp_path):
    public = _upload_image(s3_anon_env, tmp_path, PUBLIC, "anon/img.zarr", small_image)
    private = _upload_image(s3_anon_env, tmp_path, PRIVATE, "anon/img.zarr", small_image)
    (image,) = read_ome_zarr(public)
    np.testing.assert_array_equal(image.levels[0].compute(), small_image)
    with pytest.raises(StoreAccessError, match=rf"{private}.*access denied"):
        read_ome_zarr(private)


def test_credentials_from_the_environment(s3_env, small_image, tmp_path):
    url = _upload_image(s3_env, tmp_path, PRIVATE, "env/img.zarr", small_image)
    assert looks_like_ome_zarr(url)
    (image,) = read_ome_zarr(url)
    np.testing.assert_array_equal(image.levels[0].compute(), small_image)


def test_storage_options_instead_of_environment(s3_server, small_image, tmp_path, monkeypatch):
    url = _upload_image(s3_server, tmp_path, PRIVATE, "opts/img.zarr", small_image)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    options = {"endpoint_url": s3_server.endpoint, "key": ACCESS_KEY, "secret": SECRET_KEY}
    (image,) = read_ome_zarr(url, storage_options=options)
    np.testing.assert_array_equal(image.levels[0].compute(), small_image)


def test_missing_bucket_and_prefix_are_named(s3_env):
    with pytest.raises(StoreAccessError, match="bucket 'no-such-bucket' does not exist"):
        read_ome_zarr("s3://no-such-bucket/image.zarr")
    with pytest.raises(
        StoreAccessError, match=r"s3://private/nothing-here\.zarr: no zarr metadata"
    ):
        read_ome_zarr("s3://private/nothing-here.zarr")


def test_store_objects_are_store_like(s3_env, small_image, tmp_path):
    """A zarr ObjectStore, a zarr.Group and a LocalStore all open like their URL/path."""
    folder = tmp_path / "img.zarr"
    write_image(folder, small_image, axes="yx")
    url = s3_env.upload(folder, PRIVATE, "objects/img.zarr")
    store = zarr.storage.ObjectStore(object_store(url), read_only=True)
    for source in (
        store,
        zarr.open_group(store, mode="r"),
        zarr.storage.LocalStore(folder, read_only=True),
        zarr.open_group(zarr.storage.LocalStore(folder), mode="r"),
        f"file://{folder}",
    ):
        (image,) = read_ome_zarr(source)
        np.testing.assert_array_equal(image.levels[0].compute(), small_image)
        assert looks_like_ome_zarr(source)
    assert open_location(store).kind == "object"
