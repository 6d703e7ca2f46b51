"""Where render outputs live, so that every worker and the code location see the same files.

A variant's render is a folder (its files and ``manifest.json``). The ledger records where it is as a
*location*: a path in a folder store (``AUTOPLAY_ARTIFACTS`` unset: ``AUTOPLAY_HOME/renders``; a folder: its
``renders/``, for a mount every machine shares), or ``s3://bucket/prefix/renders/<variant_id>`` in
S3-compatible object storage (boto3; production). MLflow keeps its artifacts beside them (``mlflow/``).

A render is written into the store's ``local_root`` (the folder itself, or ``AUTOPLAY_HOME/renders`` on the
machine that renders when the store is remote), then ``put`` into the store, and read back through
``local(location)``: a folder on this machine, downloaded once into ``local_root`` when the store is remote.
The manifest is uploaded last and downloads go into a staging folder renamed into place, so a manifest seen
in either place means the whole render is there, and a step retried after a crash writes the same keys
again (never a second copy).

Credentials and the endpoint are boto3's own: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (or an
instance role) and ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` for an S3-compatible server.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from rendering.outputs import MANIFEST, staging_prefix


class ArtifactStoreError(RuntimeError):
    """The store cannot be reached or does not hold what was asked; the message names the location."""


class ArtifactStore(Protocol):
    """What the loop needs of a store of render folders."""

    local_root: Path

    def put(self, folder: Path, variant_id: str) -> str:
        """Store a finished render folder; returns its location."""

    def pull(self, variant_id: str) -> bool:
        """Bring the stored render of ``variant_id`` into ``local_root`` if the store has one and this
        machine does not; True when it is there afterwards."""

    def local(self, location: str) -> Path:
        """The folder of ``location`` on this machine."""

    def location(self, variant_id: str) -> str:
        """Where the render of ``variant_id`` is (or would be) stored."""


@dataclass(frozen=True)
class FolderStore:
    """Render folders in one folder: this machine's, or a mount every worker shares."""

    local_root: Path

    def location(self, variant_id: str) -> str:
        return str(self.local_root / variant_id)

    def put(self, folder: Path, variant_id: str) -> str:
        target = self.local_root / _checked(variant_id)
        if Path(folder).resolve() != target.resolve():  # rendered elsewhere: copy in, then swap into place
            staging = _staging(self.local_root, variant_id)
            try:
                shutil.copytree(folder, staging, dirs_exist_ok=True)
                _swap_in(staging, target, replace_whole=True)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return str(target)

    def pull(self, variant_id: str) -> bool:
        return (self.local_root / variant_id / MANIFEST).is_file()

    def local(self, location: str) -> Path:
        if "://" in location:
            raise ArtifactStoreError(f"{location}: in object storage, but AUTOPLAY_ARTIFACTS names a folder")
        return Path(location)


@dataclass
class S3Store:
    """Render folders as objects under ``s3://bucket/prefix/<variant_id>/``, with a local copy in
    ``local_root``. The bucket is made on first use when missing (where the credentials may)."""

    bucket: str
    prefix: str
    local_root: Path
    _client: object = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str, local_root: Path, folder: str = "") -> S3Store:
        """The store at ``s3://bucket/prefix``, or at its ``folder`` when one is given."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ArtifactStoreError(f"{url!r}: expected s3://bucket[/prefix] (or a folder)")
        prefix = "/".join(p for p in (parts.path.strip("/"), folder) if p)
        return cls(parts.netloc, prefix, Path(local_root))

    @property
    def client(self):
        if self._client is None:
            import boto3

            client = boto3.client("s3")
            try:
                client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                    raise ArtifactStoreError(f"s3://{self.bucket}: {exc}") from None
                self._call("create bucket", "", lambda: client.create_bucket(Bucket=self.bucket))
            except BotoCoreError as exc:
                raise ArtifactStoreError(f"s3://{self.bucket}: {exc}") from None
            self._client = client
        return self._client

    def _key(self, variant_id: str, name: str = "") -> str:
        return "/".join(p for p in (self.prefix, variant_id, name) if p)

    def location(self, variant_id: str) -> str:
        return f"s3://{self.bucket}/{self._key(variant_id)}"

    def put(self, folder: Path, variant_id: str) -> str:
        folder = Path(folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        files.sort(key=lambda p: p.name == MANIFEST)  # the manifest last: seen means complete
        # a render again under the same id (new code or Blender): its old manifest goes first, so no reader
        # takes old and new files for one render while the new ones upload
        manifest = self._key(_checked(variant_id), MANIFEST)
        self._call("delete", manifest, lambda: self.client.delete_object(Bucket=self.bucket, Key=manifest))
        for path in files:
            key = self._key(variant_id, path.relative_to(folder).as_posix())
            self._call("upload", key, lambda p=path, k=key: self.client.upload_file(str(p), self.bucket, k))
        return self.location(variant_id)

    def pull(self, variant_id: str) -> bool:
        target = self.local_root / _checked(variant_id)
        if (target / MANIFEST).is_file():
            return True
        keys = self._keys(variant_id)
        if self._key(variant_id, MANIFEST) not in keys:
            return False
        staging = _staging(self.local_root, variant_id)
        try:
            for key in keys:
                path = (staging / key.removeprefix(self._key(variant_id) + "/")).resolve()
                if not path.is_relative_to(staging.resolve()):  # a key with ../ in it: never written outside
                    raise ArtifactStoreError(f"s3://{self.bucket}/{key}: a key outside its render's folder")
                path.parent.mkdir(parents=True, exist_ok=True)
                self._call("download", key, lambda k=key, p=path: self.client.download_file(self.bucket, k, str(p)))
            _swap_in(staging, target, replace_whole=False)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return True

    def local(self, location: str) -> Path:
        if "://" not in location:  # rendered before the store was S3: still where it was written
            return Path(location)
        parts = urlsplit(location)
        key = parts.path.strip("/")
        if parts.scheme != "s3" or parts.netloc != self.bucket or not key.startswith(self._key("")):
            raise ArtifactStoreError(f"{location}: not a location in s3://{self.bucket}/{self.prefix}")
        variant_id = key.removeprefix(self._key("")).strip("/")
        if not self.pull(variant_id):
            raise ArtifactStoreError(f"{location}: no render stored there ({MANIFEST} missing)")
        return self.local_root / variant_id

    def _keys(self, variant_id: str) -> list[str]:
        prefix = self._key(variant_id) + "/"
        pages = self._call(
            "list",
            prefix,
            lambda: list(self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)),
        )
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def _call(self, what: str, key: str, fn):
        try:
            return fn()
        except (BotoCoreError, ClientError, Boto3Error) as exc:  # Boto3Error: upload_file's and download_file's
            raise ArtifactStoreError(f"s3://{self.bucket}/{key}: {what} failed: {exc}") from None


def _staging(root: Path, variant_id: str) -> Path:
    """A folder to fill before it is renamed into place; ``rendering.outputs.dead_staging`` sweeps it when its
    process was killed."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=staging_prefix(variant_id), dir=root))


def _swap_in(staging: Path, target: Path, replace_whole: bool) -> None:
    """Rename a filled staging folder to ``target``. A copy that another process finished first is kept when
    ``replace_whole`` is false (two readers pulling the same render); a half-written one is replaced."""
    if (target / MANIFEST).is_file() and not replace_whole:
        return
    shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(staging, target)
    except OSError:  # another process put its copy there in between: theirs is as good as ours
        if not (target / MANIFEST).is_file():
            raise


def _checked(variant_id: str) -> str:
    """A variant id as a folder name: one path component, nothing that climbs out of the store."""
    if not variant_id or "/" in variant_id or "\\" in variant_id or variant_id.startswith("."):
        raise ArtifactStoreError(f"{variant_id!r}: not a variant id")
    return variant_id


def artifact_store(artifacts: str | None, home: Path, cache: Path | None = None) -> ArtifactStore:
    """The render store ``AUTOPLAY_ARTIFACTS`` names: unset for ``home/renders``, a folder's ``renders/``, or
    ``s3://bucket/prefix`` for objects under ``prefix/renders/``, kept locally in ``cache`` (default
    ``home/renders``; each render worker of ``autoplay up`` has its own, as on a machine of its own)."""
    if not artifacts:
        return FolderStore(Path(home) / "renders")
    if _is_url(artifacts):
        return S3Store.from_url(artifacts, Path(cache or Path(home) / "renders"), "renders")
    return FolderStore(Path(artifacts).resolve() / "renders")


def _is_url(artifacts: str) -> bool:
    """An object store's URL (``S3Store.from_url`` says whether it is a good one), not a folder."""
    return "://" in artifacts or artifacts.lower().startswith("s3:")


def mlflow_artifacts(artifacts: str | None) -> str | None:
    """Where MLflow keeps its artifacts when the render store is given: beside the renders."""
    if not artifacts:
        return None
    if _is_url(artifacts):
        return artifacts.rstrip("/") + "/mlflow"
    return (Path(artifacts).resolve() / "mlflow").as_uri()
