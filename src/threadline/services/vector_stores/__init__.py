"""Vector stores, split by use case: ``stores`` (CRUD and the tool_resources helper), ``files`` (a
store's files), ``batches`` (file batches), ``search`` (BM25 / hybrid retrieval)."""
