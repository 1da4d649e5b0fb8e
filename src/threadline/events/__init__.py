"""How run events travel: ``bus`` (the ``EventBus`` seam, the in-process bus and token-delta
coalescing), ``database`` (the bus across processes, over the ``run_events`` table), ``codec``
(events to and from rows) and ``dispatch`` (handing a queued run to an executor). Below services and
above storage: the API (streams subscribe) and the executor (runs publish) both use it, neither
through the other."""
