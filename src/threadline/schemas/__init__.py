"""Wire models: request bodies (pydantic, strict, no unknown fields) and response shapes."""
