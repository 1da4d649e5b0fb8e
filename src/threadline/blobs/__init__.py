"""File bytes behind a small interface: local disk now, object storage later."""

from threadline.blobs.local import LocalDiskBlobStore
from threadline.blobs.store import BlobNotFound, BlobStore, BlobTooLarge
from threadline.config import Settings


def blob_store_from_settings(settings: Settings) -> BlobStore:
    """The one place that says where file bytes live (every process of a deployment must agree)."""
    return LocalDiskBlobStore(settings.data_dir / "files")


__all__ = ["BlobNotFound", "BlobStore", "BlobTooLarge", "LocalDiskBlobStore", "blob_store_from_settings"]
