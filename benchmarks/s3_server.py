"""A local S3 server (moto's server mode) holding the benchmark's stores, for the s3 cases.

Run as a script with the folder of stores and the names to upload: it starts moto on
127.0.0.1 (a free port), creates the bucket `bench`, uploads each store under its name,
prints the endpoint URL on the first line of stdout and serves until killed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BUCKET = "bench"
KEY, SECRET, REGION = "bench-key", "bench-secret", "us-east-1"


def environment(endpoint: str) -> dict[str, str]:
    """AWS variables pointing every client at the server (never at a metadata service)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    os.environ.update(environment("http://127.0.0.1"))
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    for name in args.names:
        root = args.folder / name
        files = [f for f in root.rglob("*") if f.is_file()]

        def put(file: Path, root: Path = root, name: str = name) -> None:
            key = f"{name}/{file.relative_to(root).as_posix()}"
            client.put_object(Bucket=BUCKET, Key=key, Body=file.read_bytes())

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(put, files))
    print(endpoint, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
