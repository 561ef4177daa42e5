"""Attachment bytes outside PostgreSQL: a content-addressed blob store behind a small interface.

PostgreSQL keeps the metadata and the SHA-256 (the blob's address); the bytes go to a
filesystem directory by default. Another backend (S3-compatible object storage) only needs
`put` and `get`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol


class BlobStoreError(RuntimeError):
    """The store could not write or read a blob (disk full, permissions, outage)."""


class BlobNotFoundError(BlobStoreError):
    """No blob at this address."""


class BlobCorruptedError(BlobStoreError):
    """The stored bytes no longer hash to their address."""


class BlobStore(Protocol):
    async def put(self, data: bytes) -> str:
        """Store `data` durably; return its address (hex SHA-256). Idempotent."""
        ...

    async def get(self, digest: str) -> bytes:
        """The bytes stored at `digest`, checked against it."""
        ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FilesystemBlobStore:
    """Blobs as files `<root>/<d[0:2]>/<d[2:4]>/<digest>`.

    A write goes to a temporary file in the target directory, is fsynced, then renamed into
    place: a reader (or a crash) never sees a partial blob under its address. Equal contents
    share one file.
    """

    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise BlobNotFoundError(digest)
        return self._root / digest[:2] / digest[2:4] / digest

    async def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        try:
            await asyncio.to_thread(self._write, self._path(digest), data)
        except OSError as error:
            raise BlobStoreError(f"cannot store blob {digest}: {error.strerror}") from error
        return digest

    async def get(self, digest: str) -> bytes:
        data = await asyncio.to_thread(self._read, self._path(digest))
        if sha256_hex(data) != digest:
            raise BlobCorruptedError(digest)
        return data

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    @staticmethod
    def _read(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError as error:
            raise BlobNotFoundError(path.name) from error
        except OSError as error:
            raise BlobStoreError(f"cannot read blob {path.name}: {error.strerror}") from error
