"""Where `pixfit batch` reads sources and writes outputs: a folder, or a bucket's folder.

Names are relative, "/"-separated paths under the tree's root (`trips/cat.jpg`), the same
for both kinds. Trees are small frozen values, so they pickle to Dask workers; a bucket's
client is made in each process that uses it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pixfit.errors import NotFound
from pixfit.s3 import Bucket, S3Source, parse_s3_url, store_errors

__all__ = [
    "Entry",
    "Folder",
    "ObjectFolder",
    "Tree",
    "make_folder",
    "open_tree",
]

# Object metadata that records which version of its source an output was rendered from.
_SOURCE_VERSION = "pixfit-source"


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of a tree."""

    name: str
    size: int
    # When it last changed, in ns since the epoch (whole seconds for objects).
    modified_ns: int
    # What changes whenever the bytes may have: the mtime for files, the ETag for objects.
    version: str


class Tree(Protocol):
    """A folder of files to read and write by relative name."""

    def files(self, skip: Tree) -> Iterator[Entry]:
        """Every file, in sorted order, leaving out hidden ones and those under `skip`."""
        ...

    def head(self, name: str, size: int) -> bytes:
        """The first `size` bytes of a file; OSError or PixfitError when unreadable."""
        ...

    def read(self, name: str, max_bytes: int) -> bytes:
        """A file's bytes, refusing more than `max_bytes`."""
        ...

    def names(self) -> set[str]:
        """The names of every file (one listing, for the freshness checks of a run)."""
        ...

    def has_output(self, name: str, source: Entry) -> bool:
        """Whether `name` (one of `names()`) was made from this version of `source`."""
        ...

    def write(self, name: str, data: bytes, source: Entry) -> None:
        """Write `name` whole (readers never see half of it), made from `source`."""
        ...

    def remove(self, names: list[str]) -> None:
        """Remove the files that exist among `names`."""
        ...

    def display(self, name: str) -> str:
        """How messages name a file."""
        ...


def open_tree(spec: str | Path, *, endpoint_url: str = "", region: str = "") -> Tree:
    """A bucket's folder for `s3://bucket/folder`, else a folder on disk."""
    text = os.fspath(spec)
    if text.startswith("s3://"):
        bucket = parse_s3_url(text, endpoint_url=endpoint_url, region=region)
        return ObjectFolder(bucket)
    return Folder(Path(text))


@dataclass(frozen=True, slots=True)
class Folder:
    """Files under a folder on disk."""

    root: Path

    def files(self, skip: Tree) -> Iterator[Entry]:
        """Every file under the root, leaving out hidden ones and `skip`'s folder."""
        avoid = skip.root.resolve() if isinstance(skip, Folder) else None
        for folder, dirs, names in os.walk(self.root):
            keep = [name for name in dirs if Path(folder, name).resolve() != avoid]
            dirs[:] = sorted(name for name in keep if not name.startswith("."))
            for name in sorted(names):
                if name.startswith("."):
                    continue
                path = Path(folder, name)
                try:
                    stat = path.stat()
                except OSError:  # a dangling link: let the render report it
                    stat = None
                yield Entry(
                    path.relative_to(self.root).as_posix(),
                    stat.st_size if stat else 0,
                    stat.st_mtime_ns if stat else 0,
                    str(stat.st_mtime_ns if stat else 0),
                )

    def head(self, name: str, size: int) -> bytes:
        """The file's first bytes."""
        with (self.root / name).open("rb") as file:
            return file.read(size)

    def read(self, name: str, max_bytes: int) -> bytes:
        """The file's bytes (the renderer refuses more than `max_bytes`)."""
        with (self.root / name).open("rb") as file:
            return file.read(max_bytes + 1)

    def names(self) -> set[str]:
        """Every file under the root."""
        if not self.root.is_dir():
            return set()
        return {path.relative_to(self.root).as_posix() for path in self.root.rglob("*")}

    def has_output(self, name: str, source: Entry) -> bool:
        """Strictly newer than the source: an output of the same clock tick may predate an
        edit of the source."""
        try:
            return (self.root / name).stat().st_mtime_ns > source.modified_ns
        except OSError:
            return False

    def write(self, name: str, data: bytes, source: Entry) -> None:
        """A hidden temporary in the same folder, then a rename: an interrupted run leaves
        no half file that a resume would take for a finished one."""
        target = self.root / name
        make_folder(target.parent)
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def remove(self, names: list[str]) -> None:
        """Unlink those that exist."""
        for name in names:
            (self.root / name).unlink(missing_ok=True)

    def display(self, name: str) -> str:
        """The file's path as given on the command line."""
        return os.fspath(self.root / name)


@dataclass(frozen=True, slots=True)
class ObjectFolder:
    """Objects under a bucket's folder."""

    bucket: Bucket

    def files(self, skip: Tree) -> Iterator[Entry]:
        """Every object under the folder, leaving out hidden names and `skip`'s folder."""
        avoid = None
        if isinstance(skip, ObjectFolder) and skip.bucket.name == self.bucket.name:
            avoid = skip.bucket.key("")
        with store_errors(self.bucket.name, self.bucket.key("")):
            listed = list(self.bucket.list())
        for item in sorted(listed, key=lambda item: str(item["Key"])):
            key = str(item["Key"])
            name = self.bucket.name_of(key)
            if (avoid and key.startswith(avoid)) or key.endswith("/"):
                continue
            if any(part.startswith(".") for part in name.split("/")):
                continue
            modified = item["LastModified"]
            yield Entry(
                name, int(item["Size"]), int(modified.timestamp()) * 10**9, str(item["ETag"])
            )

    def head(self, name: str, size: int) -> bytes:
        """The object's first bytes, by a ranged GET."""
        key = self.bucket.key(name)
        with store_errors(self.bucket.name, name):
            reply = self.bucket.client().get_object(
                Bucket=self.bucket.name, Key=key, Range=f"bytes=0-{size - 1}"
            )
            with reply["Body"] as body:
                return bytes(body.read())

    def read(self, name: str, max_bytes: int) -> bytes:
        """The object's bytes, under `max_bytes` while they stream (as the s3 source)."""
        return S3Source(self.bucket, max_bytes).open(name).data

    def names(self) -> set[str]:
        """Every object under the folder."""
        with store_errors(self.bucket.name, self.bucket.key("")):
            return {self.bucket.name_of(str(item["Key"])) for item in self.bucket.list()}

    def has_output(self, name: str, source: Entry) -> bool:
        """Whether the object's metadata names this version of the source (one HEAD)."""
        try:
            with store_errors(self.bucket.name, name):
                reply = self.bucket.client().head_object(
                    Bucket=self.bucket.name, Key=self.bucket.key(name)
                )
        except NotFound:
            return False
        return bool(reply.get("Metadata", {}).get(_SOURCE_VERSION) == source.version)

    def write(self, name: str, data: bytes, source: Entry) -> None:
        """One PUT: an object appears whole or not at all."""
        with store_errors(self.bucket.name, name):
            self.bucket.client().put_object(
                Bucket=self.bucket.name,
                Key=self.bucket.key(name),
                Body=data,
                Metadata={_SOURCE_VERSION: source.version},
            )

    def remove(self, names: list[str]) -> None:
        """One DeleteObjects for them all (absent keys are no error in S3)."""
        objects = [{"Key": self.bucket.key(name)} for name in names]
        with store_errors(self.bucket.name, ", ".join(names)):
            self.bucket.client().delete_objects(
                Bucket=self.bucket.name, Delete={"Objects": objects, "Quiet": True}
            )

    def display(self, name: str) -> str:
        """The object as an s3:// URL."""
        return f"s3://{self.bucket.name}/{self.bucket.key(name)}"


def make_folder(folder: Path) -> None:
    """Make `folder` and its parents; OSError naming the path when that cannot be done."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        # mkdir says "File exists" or names the folder it could not make under a file:
        # name the file in the way instead.
        paths = (folder, *folder.parents)
        blocker = next((path for path in paths if path.exists() and not path.is_dir()), folder)
        raise NotADirectoryError(errno.ENOTDIR, "Not a folder", os.fspath(blocker)) from None
