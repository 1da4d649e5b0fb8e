"""Indexing vector-store files in the background, beside run execution and independent of it:
``loop`` (the ingestion loop: claims queued files under a lease it owns, renews it, hands files to
``services/ingestion.py``) and ``pool`` (the child processes, with hard limits, that extract and chunk
a file's text). Storage is reached only through ``services/ingestion.py``."""
