"""``OpenAIEmbeddingModel``: the ``EmbeddingModel`` over any OpenAI-compatible ``/embeddings`` endpoint."""

from __future__ import annotations

import openai
from openai.types import Embedding

from threadline.config import Settings
from threadline.llm.client import open_client
from threadline.llm.faults import Backoff, FaultTranslator, RetryPolicy

# Inputs per request: small enough for every server's batch limit (OpenAI allows 2048, some local
# servers far fewer) and for one retry to be cheap, large enough to keep round trips few.
EMBEDDING_BATCH_SIZE = 64


class OpenAIEmbeddingModel:
    """Embeds in batches of ``batch_size``; each batch is retried like a chat call (before any
    output exists, so every retryable fault is retried). Owns its client: call ``aclose()``."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        *,
        api_key: str,
        timeout_s: float,
        policy: RetryPolicy,
        batch_size: int = EMBEDDING_BATCH_SIZE,
    ) -> None:
        self._client = client
        self._model = model
        self._policy = policy
        self._batch_size = batch_size
        self._faults = FaultTranslator(str(client.base_url), api_key, timeout_s)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in input order. Texts must be non-empty (OpenAI rejects "")."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors.extend(await self._embed_batch(texts[start : start + self._batch_size]))
        return vectors

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        backoff = Backoff(self._policy)
        while True:
            try:
                # ``float`` explicitly: the SDK otherwise asks for base64, which Ollama and other
                # servers do not implement.
                response = await self._client.embeddings.create(
                    model=self._model, input=batch, encoding_format="float"
                )
            except (openai.OpenAIError, ValueError) as err:
                await backoff.wait_or_raise(self._faults.translate(err), err)
                continue
            vectors = _ordered_vectors(getattr(response, "data", None), len(batch))
            if vectors is None:
                raise self._faults.error(
                    f"Model provider {self._faults.host} did not return one embedding per input "
                    f"({len(batch)} inputs)"
                )
            return vectors

    async def aclose(self) -> None:
        await self._client.close()


def embedding_model_from_settings(settings: Settings) -> OpenAIEmbeddingModel | None:
    """The configured embedding model, or ``None`` when ``embeddings_model`` is empty (keyword search
    only). The base URL and key fall back to the default upstream's. Raises ValueError when
    embeddings are half configured (a base URL but no model, or a model but no base URL at all)."""
    base_url = settings.embeddings_base_url or settings.upstream_base_url
    if not settings.embeddings_model:
        if settings.embeddings_base_url:
            raise ValueError("THREADLINE_EMBEDDINGS_BASE_URL is set but THREADLINE_EMBEDDINGS_MODEL is empty")
        return None
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(
            "THREADLINE_EMBEDDINGS_MODEL is set but neither THREADLINE_EMBEDDINGS_BASE_URL nor "
            "THREADLINE_UPSTREAM_BASE_URL is an http(s) URL"
        )
    api_key = settings.embeddings_api_key or settings.upstream_api_key
    client = open_client(base_url, api_key, settings.upstream_timeout_s)
    return OpenAIEmbeddingModel(
        client,
        settings.embeddings_model,
        api_key=api_key,
        timeout_s=settings.upstream_timeout_s,
        policy=RetryPolicy.from_settings(settings),
    )


def _ordered_vectors(data: object, expected: int) -> list[list[float]] | None:
    """The vectors in input order, or None when ``data`` is not one embedding per input. The spec
    orders by ``index``; not every server sorts, and a few omit ``index`` (then list order counts)."""
    if not isinstance(data, list) or len(data) != expected:
        return None
    if not all(isinstance(item, Embedding) and isinstance(item.embedding, list) for item in data):
        return None
    indexes = [item.index for item in data]
    if all(index is None for index in indexes):
        return [item.embedding for item in data]
    by_index = {item.index: item.embedding for item in data if isinstance(item.index, int)}
    if sorted(by_index) != list(range(expected)):
        return None
    return [by_index[i] for i in range(expected)]
