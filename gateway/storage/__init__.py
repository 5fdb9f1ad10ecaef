"""Storage backends behind one contract (`gateway.storage.base.Store`)."""

from gateway.storage.base import Job as Job, Store as Store
from gateway.storage.connect import open_store as open_store

__all__ = ["Job", "Store", "open_store"]
