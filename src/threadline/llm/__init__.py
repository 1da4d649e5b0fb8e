"""The upstream model client behind a small Protocol.

The executor depends on ``ChatModel`` / ``EmbeddingModel`` and the event dataclasses only, so another
client plugs in behind the Protocols. The acceptance tests script the model at the HTTP edge (a fake
OpenAI-compatible server, ``tests/support/fake_model.py``), which exercises this client too; the
in-process engine tests (``tests/engine``) plug a scripted ``ChatModel`` in behind the Protocol
instead (``tests/support/scripted_model.py``). ``ProviderRouter`` picks the provider for a model name.
"""

from threadline.llm.client import OpenAICompatibleModel
from threadline.llm.embeddings import OpenAIEmbeddingModel, embedding_model_from_settings
from threadline.llm.faults import RetryPolicy
from threadline.llm.providers import ModelsFileInvalid, ProviderRouter, load_models_file
from threadline.llm.types import (
    ChatEvent,
    ChatModel,
    ChatRequest,
    EmbeddingModel,
    Finish,
    TextDelta,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "ChatEvent",
    "ChatModel",
    "ChatRequest",
    "EmbeddingModel",
    "Finish",
    "ModelsFileInvalid",
    "OpenAICompatibleModel",
    "OpenAIEmbeddingModel",
    "ProviderRouter",
    "RetryPolicy",
    "TextDelta",
    "ToolCallDelta",
    "Usage",
    "embedding_model_from_settings",
    "load_models_file",
]
