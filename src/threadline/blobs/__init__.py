"""File bytes behind a small interface: local disk now, object storage later."""

from threadline.blobs.local import LocalDiskBlobStore
from threadline.blobs.store import BlobNotFound, BlobStore, BlobTooLarge

__all__ = ["BlobNotFound", "BlobStore", "BlobTooLarge", "LocalDiskBlobStore"]
