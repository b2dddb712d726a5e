"""Where images returned as URLs live, and the signed, expiring URLs that reach them."""

from pixelsmith.storage.local import ImageStore, LocalImageStore, StoredImage

__all__ = ["ImageStore", "LocalImageStore", "StoredImage"]
