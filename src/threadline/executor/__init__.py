"""Runs a run: ``scheduler`` (queue, tasks, leases, recovery, expiry), ``runner`` (one run), ``prompt``
(thread -> chat messages), ``tools`` (tool dispatch), ``file_search`` and ``code_interpreter`` (the
built-in tools). Events leave through ``threadline.events``; file ingestion is ``threadline.ingestion``."""
