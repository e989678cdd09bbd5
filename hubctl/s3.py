"""A lake on object storage: ``--lake s3://bucket/prefix``.

:class:`S3Root` stands where a local lake has its folder (a :class:`pathlib.Path`): it joins
with ``/`` and answers the few folder questions the lake asks (``is_dir``, ``iterdir``,
``glob``, ``read_text``, ``write_text``, ``unlink``), each one S3 request or a listing. It adds
the conditional writes that leases and run markers need across machines: :meth:`create`
(``If-None-Match: *``), :meth:`replace_if` and :meth:`delete_if` (``If-Match: <etag>``), and
:meth:`read_versioned`, which gives an object's age by the server's clock (so machines whose
clocks disagree still agree on when a lease expired).

The endpoint, region and credentials come from the environment in the usual AWS names
(``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_ALLOW_HTTP``), never from hub.toml. Delta tables are written by
deltalake's own S3 support with conditional puts (:func:`delta_options`); DuckDB reads their
Parquet files through pyarrow's S3 filesystem registered with it (:func:`duckdb_filesystem`),
so nothing is downloaded at run time. boto3 is imported on first use only.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from hubctl.errors import ConfigError, HubError

__all__ = ["SCHEME", "LakeRoot", "S3Root", "arrow_dataset", "delta_options", "duckdb_filesystem",
           "is_uri", "parse_root", "total_bytes", "use_with_duckdb"]

SCHEME = "s3://"


def is_uri(text: object) -> bool:
    """True for an ``s3://`` location."""
    return isinstance(text, str) and text.startswith(SCHEME)


def parse_root(uri: str, origin: str = "--lake") -> S3Root:
    """``s3://bucket/prefix`` as an S3Root (ConfigError naming ``origin`` if malformed)."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{origin} = {uri!r} is not an S3 location",
                          hint="write it as s3://BUCKET/PREFIX")
    _check_http()
    return S3Root(parts.netloc, parts.path.strip("/"))


def _check_http() -> None:
    """An ``http://`` endpoint needs AWS_ALLOW_HTTP=true (deltalake refuses it otherwise)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if endpoint.startswith("http://") and os.environ.get("AWS_ALLOW_HTTP", "").lower() != "true":
        raise ConfigError(f"AWS_ENDPOINT_URL={endpoint} is plain HTTP",
                          hint="set AWS_ALLOW_HTTP=true to use it (or an https:// endpoint)")


@dataclass(frozen=True)
class S3Root:
    """An object key prefix in a bucket, used like a lake's folder."""

    bucket: str
    key: str = ""

    def __truediv__(self, part: str) -> S3Root:
        joined = "/".join(p for p in (self.key, str(part).strip("/")) if p)
        return S3Root(self.bucket, joined)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}" if self.key else f"{SCHEME}{self.bucket}"

    def __fspath__(self) -> str:  # os.path.* on a remote path is a bug: fail loudly
        raise TypeError(f"{self} is an S3 location, not a local path")

    @property
    def name(self) -> str:
        """The last part of the key."""
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> S3Root:
        """The prefix one level up."""
        return S3Root(self.bucket, self.key.rsplit("/", 1)[0] if "/" in self.key else "")

    @property
    def suffix(self) -> str:
        """The extension of the last part, with its dot (``.json``)."""
        name = self.name
        return name[name.rfind("."):] if "." in name.lstrip(".") else ""

    def resolve(self) -> S3Root:
        """Itself (an S3 location is absolute)."""
        return self

    # ------------------------------------------------------------------ folder questions
    def _listing(self, delimiter: bool = True, limit: int | None = None
                 ) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages under ``<key>/``."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.key + "/" if self.key
                                  else ""}
        if delimiter:
            kwargs["Delimiter"] = "/"
        if limit:
            kwargs["MaxKeys"] = limit
        while True:
            page = _call("list_objects_v2", self, **kwargs)
            yield page
            if limit or not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def _arrow(self) -> str:
        return f"{self.bucket}/{self.key}" if self.key else self.bucket

    def is_dir(self) -> bool:
        """True when any object lies under this prefix."""
        try:  # pyarrow's client: reading the lake (hubctl sql) then never imports boto3
            from pyarrow import fs

            return bool(arrow_filesystem().get_file_info(self._arrow()).type
                        == fs.FileType.Directory)
        except OSError:  # the request failed: boto3's error says why
            pass
        return any(p.get("KeyCount", 0) for p in self._listing(delimiter=False, limit=1))

    def is_file(self) -> bool:
        """True when an object has exactly this key."""
        try:
            _call("head_object", self, Bucket=self.bucket, Key=self.key)
        except FileNotFoundError:
            return False
        return True

    def exists(self) -> bool:
        """An object or a prefix with objects under it."""
        return self.is_file() or self.is_dir()

    def iterdir(self) -> Iterator[S3Root]:
        """The objects and prefixes one level under this one."""
        try:
            from pyarrow import fs

            infos = arrow_filesystem().get_file_info(fs.FileSelector(self._arrow(),
                                                                     allow_not_found=True))
        except OSError:  # the request failed: boto3's error says why
            pass
        else:
            for info in infos:
                yield S3Root(self.bucket, info.path.split("/", 1)[1])
            return
        for page in self._listing():
            for p in page.get("CommonPrefixes", []):
                yield S3Root(self.bucket, p["Prefix"].rstrip("/"))
            for obj in page.get("Contents", []):
                yield S3Root(self.bucket, obj["Key"])

    def glob(self, pattern: str) -> Iterator[S3Root]:
        """Paths matching ``pattern``, whose parts are names or ``*`` (e.g. ``*/_delta_log``)."""
        found = [self]
        for part in pattern.split("/"):
            if part == "*":
                found = [c for f in found for c in f.iterdir()]
            elif "*" in part:
                raise ValueError(f"S3Root.glob supports '*' parts only, not {part!r}")
            else:  # a folder in the patterns the lake uses: one listing, no HEAD first
                found = [f / part for f in found if (f / part).is_dir() or (f / part).is_file()]
        return iter(found)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: object storage has no folders."""

    # ------------------------------------------------------------------ objects
    def read_bytes(self) -> bytes:
        """The object's content (FileNotFoundError if there is none)."""
        body: bytes = _call("get_object", self, Bucket=self.bucket, Key=self.key)["Body"].read()
        return body

    def read_text(self, encoding: str = "utf-8") -> str:
        """The object's content as text."""
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        """Create or replace the object (a reader sees the old or the new content, never half)."""
        _call("put_object", self, Bucket=self.bucket, Key=self.key, Body=data)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        """Create or replace the object with ``text``."""
        self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        """Delete the object (S3 does not tell whether it existed)."""
        _call("delete_object", self, Bucket=self.bucket, Key=self.key)

    def create(self, data: bytes) -> str | None:
        """Write the object only if it does not exist (``If-None-Match: *``): its ETag, or None
        when it exists already (another writer won)."""
        try:
            out = _call("put_object", self, Bucket=self.bucket, Key=self.key, Body=data,
                        IfNoneMatch="*")
        except _Precondition:
            return None
        return str(out["ETag"])

    def replace_if(self, data: bytes, etag: str) -> str | None:
        """Replace the object only if it is still version ``etag`` (``If-Match``): the new
        ETag, or None when someone replaced or deleted it since."""
        try:
            out = _call("put_object", self, Bucket=self.bucket, Key=self.key, Body=data,
                        IfMatch=etag)
        except (_Precondition, FileNotFoundError):
            return None
        return str(out["ETag"])

    def delete_if(self, etag: str) -> bool:
        """Delete the object only if it is still version ``etag``."""
        try:
            _call("delete_object", self, Bucket=self.bucket, Key=self.key, IfMatch=etag)
        except (_Precondition, FileNotFoundError):
            return False
        return True

    def read_versioned(self) -> tuple[bytes, str, float] | None:
        """The object's content, ETag and age in seconds by the server's clock (the response's
        ``Date`` less its ``Last-Modified``), or None if there is no such object."""
        try:
            out = _call("get_object", self, Bucket=self.bucket, Key=self.key)
        except FileNotFoundError:
            return None
        from email.utils import parsedate_to_datetime  # every command imports this module

        body = out["Body"].read()
        served = out["ResponseMetadata"]["HTTPHeaders"].get("date")
        now = parsedate_to_datetime(served) if served else None
        age = (now - out["LastModified"]).total_seconds() if now is not None else 0.0
        return body, str(out["ETag"]), max(age, 0.0)


#: Where a lake lives: a local folder or an S3 location.
LakeRoot: TypeAlias = Path | S3Root


def total_bytes(root: S3Root) -> int:
    """Total size of the objects under ``root``."""
    return sum(o.get("Size", 0) for page in root._listing(delimiter=False)
               for o in page.get("Contents", []))


# ---------------------------------------------------------------------- clients
class _Precondition(Exception):
    """A conditional write lost (HTTP 412, or 409 for a concurrent conditional write)."""


@functools.cache
def _client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", config=Config(retries={"max_attempts": 4, "mode": "standard"},
                            connect_timeout=10, read_timeout=60))


def _call(method: str, where: S3Root, **kwargs: Any) -> Any:
    """One S3 request; FileNotFoundError for a missing key, _Precondition for a lost
    conditional write, HubError with a hint for what the user must fix."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise HubError(f"{where}: a lake on S3 needs boto3",
                       hint="pip install 'hubctl[s3]'") from None
    try:
        return getattr(_client(), method)(**kwargs)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise FileNotFoundError(str(where)) from None
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
            raise _Precondition(code) from None
        if code == "NoSuchBucket":
            raise HubError(f"{where}: the bucket {where.bucket!r} does not exist",
                           hint="create it, or check --lake / HUBCTL_LAKE / AWS_ENDPOINT_URL"
                           ) from None
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            raise HubError(f"{where}: access denied ({code})",
                           hint="check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
        raise HubError(f"{where}: S3 {method} failed: {code or exc}") from None
    except BotoCoreError as exc:  # no credentials, endpoint unreachable, ...
        raise HubError(f"{where}: {exc}",
                       hint="set AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY for the object store") from None


def delta_options(where: object) -> dict[str, str] | None:
    """deltalake's ``storage_options`` for a table at ``where``: for S3, commits by conditional
    put (``If-None-Match``: no locking service needed, and two machines committing the same
    version cannot both win); endpoint and credentials come from the AWS variables, which
    deltalake reads itself. None for a local table."""
    return {"conditional_put": "etag"} if isinstance(where, S3Root) else None


@functools.cache
def arrow_filesystem() -> Any:
    """pyarrow's S3 filesystem configured from the AWS environment variables."""
    from pyarrow import fs

    kwargs: dict[str, Any] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        kwargs.update(endpoint_override=parts.netloc + parts.path.rstrip("/"),
                      scheme=parts.scheme or "https")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        kwargs.update(access_key=os.environ["AWS_ACCESS_KEY_ID"],
                      secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
                      session_token=os.environ.get("AWS_SESSION_TOKEN"))
    return fs.S3FileSystem(**kwargs)


@functools.cache
def use_with_duckdb() -> None:
    """Let every DuckDB connection of this process read ``s3://`` files (read-only)."""
    from hubctl.duck import use_filesystem

    try:
        use_filesystem(duckdb_filesystem())
    except ImportError as exc:
        raise HubError(f"a lake on S3 needs {exc.name or 'fsspec'} to read its tables",
                       hint="pip install 'hubctl[s3]'") from None


def arrow_dataset(files: list[str], schema: Any, partition_by: tuple[str, ...]) -> Any:
    """A snapshot's ``s3://`` Parquet files as one pyarrow dataset of the table's schema (a
    column a file lacks reads as null): registered with DuckDB, its scans read in C++ with
    projection and filter pushdown, about twice as fast as DuckDB reading through fsspec's
    Python file objects (1 M rows on moto: 6.2 s and 1.2 s of CPU against 14.3 s and 2.4 s)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    parts = ds.partitioning(pa.schema([schema.field(c) for c in partition_by]), flavor="hive") \
        if partition_by else None
    return ds.dataset([f.removeprefix(SCHEME) for f in files], filesystem=arrow_filesystem(),
                      format="parquet", schema=schema, partitioning=parts)


@functools.cache
def duckdb_filesystem() -> Any:
    """The S3 filesystem as DuckDB takes it (fsspec, protocol ``s3``), read-only: DuckDB reads
    the lake's Parquet files through it and can write nothing, whatever the SQL."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    class ReadOnlyS3(ArrowFSWrapper):  # type: ignore[misc]
        """pyarrow's S3 filesystem that only reads."""

        def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
            if mode != "rb":
                raise PermissionError(f"{path}: the lake is read-only here")
            return super()._open(path, mode, *args, **kwargs)

        def rm(self, path: Any, *args: Any, **kwargs: Any) -> None:
            raise PermissionError(f"{path}: the lake is read-only here")

        def mkdir(self, path: Any, *args: Any, **kwargs: Any) -> None:
            raise PermissionError(f"{path}: the lake is read-only here")

    return ReadOnlyS3(arrow_filesystem())
