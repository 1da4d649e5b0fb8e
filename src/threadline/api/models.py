"""/v1/models: what ``model`` an assistant or run may name. The models file's named models (owned by
their provider) and, with an upstream base URL, what that upstream lists."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from threadline.api.context import context
from threadline.api.http import json_response
from threadline.domain.errors import ModelNotFound
from threadline.llm.providers import ListedModel


def _wire(model: ListedModel) -> dict[str, object]:
    return {"id": model.id, "object": "model", "created": model.created, "owned_by": model.owned_by}


async def list_models(request: Request) -> Response:
    models = await context(request).router.list_models()
    return json_response({"object": "list", "data": [_wire(m) for m in models]})


async def retrieve_model(request: Request) -> Response:
    model_id = request.path_params["model"]
    for model in await context(request).router.list_models():
        if model.id == model_id:
            return json_response(_wire(model))
    raise ModelNotFound(model_id)


routes = [
    Route("/models", list_models, methods=["GET"]),
    # Model ids may contain slashes (``meta-llama/Llama-3``): the rest of the path is the id.
    Route("/models/{model:path}", retrieve_model, methods=["GET"]),
]
