"""Runs a run: ``worker`` (queue, tasks, recovery, expiry), ``runner`` (one run), ``prompt`` (thread ->
chat messages), ``tools`` (tool dispatch), ``bus`` (events to streams)."""
