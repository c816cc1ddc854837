"""A real S3 server (moto's server mode) on localhost for the object-store tests.

The server is started once per session on 127.0.0.1 with a free port and two
buckets: `private` (needs credentials) and `public` (anonymous reads allowed by a
bucket policy, objects uploaded public-read, as real public archives do). The
environment helpers point every AWS client at it and at credential files of the
test's own, so that no lookup ever leaves the machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRIVATE = "private"
PUBLIC = "public"
ACCESS_KEY = "test-key"
SECRET_KEY = "test-secret"
REGION = "us-east-1"


@dataclass
class S3Server:
    """A running moto S3 server and a boto3 client of it (for setting up buckets)."""

    endpoint: str
    client: Any
    server: Any

    def upload(self, folder: Path, bucket: str, prefix: str) -> str:
        """Upload every file of `folder` under `prefix`; return the s3:// URL of it."""
        extra = {"ACL": "public-read"} if bucket == PUBLIC else {}
        if folder.is_file():  # a zipped store is one object
            self.client.put_object(Bucket=bucket, Key=prefix, Body=folder.read_bytes(), **extra)
            return f"s3://{bucket}/{prefix}"
        files = [f for f in sorted(folder.rglob("*")) if f.is_file()]

        def put(file: Path) -> None:
            key = f"{prefix}/{file.relative_to(folder).as_posix()}"
            self.client.put_object(Bucket=bucket, Key=key, Body=file.read_bytes(), **extra)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(put, files))
        return f"s3://{bucket}/{prefix}"

    def protect(self, prefix: str) -> None:
        """Deny writes and deletes under `prefix` of the public bucket, for everyone.

        moto lets anonymous requests write to any bucket unless a policy denies it.
        """
        policy = json.loads(self.client.get_bucket_policy(Bucket=PUBLIC)["Policy"])
        policy["Statement"].append(
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"arn:aws:s3:::{PUBLIC}/{prefix}/*"],
            }
        )
        self.client.put_bucket_policy(Bucket=PUBLIC, Policy=json.dumps(policy))

    def keys(self, bucket: str, prefix: str) -> list[str]:
        """Every key under `prefix` in `bucket`."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{prefix}/"
        )
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def environment(self, folder: Path, *, credentials: bool) -> dict[str, str]:
        """AWS variables for a client of this server (with or without credentials)."""
        config = folder / "aws-config"
        creds = folder / "aws-credentials"
        config.write_text("[default]\n")
        creds.write_text("")
        env = {
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(creds),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
        }
        if credentials:
            env |= {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        return env


AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def start_server() -> S3Server:
    """Start moto on 127.0.0.1 (free port) with the private and the public bucket."""
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )
    client.create_bucket(Bucket=PRIVATE)
    client.create_bucket(Bucket=PUBLIC)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{PUBLIC}", f"arn:aws:s3:::{PUBLIC}/*"],
            }
        ],
    }
    client.put_bucket_policy(Bucket=PUBLIC, Policy=json.dumps(policy))
    return S3Server(endpoint=endpoint, client=client, server=server)


def session_server() -> Iterator[S3Server]:
    """The body of the session fixture: start, yield, stop."""
    server = start_server()
    try:
        yield server
    finally:
        server.server.stop()
