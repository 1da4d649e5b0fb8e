"""ProviderRouter: which provider (and upstream model name) serves a model; models file validation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from threadline.config import Settings
from threadline.domain.errors import NoProviderForModel, UpstreamError
from threadline.llm import ModelsFileInvalid, OpenAICompatibleModel, ProviderRouter, load_models_file

pytestmark = pytest.mark.anyio

MODELS_TOML = """
[providers.ollama]
base_url = "http://localhost:11434/v1"
api_key = "ollama"

[providers.hosted]
base_url = "https://api.example.com/v1"
api_key_env = "HOSTED_KEY"

[[models]]
name = "llama3"
provider = "ollama"
upstream_model = "llama3.1:8b"

[[models]]
prefix = "gpt-"
provider = "hosted"

[[models]]
prefix = "gpt-4o-local"
provider = "ollama"

[[models]]
name = "gpt-4o"
provider = "ollama"
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def models_file(tmp_path: Path) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(MODELS_TOML)
    return path


@asynccontextmanager
async def router_for(settings: Settings) -> AsyncIterator[ProviderRouter]:
    router = ProviderRouter.from_settings(settings, env={"HOSTED_KEY": "hosted-secret"})
    try:
        yield router
    finally:
        await router.aclose()


def host_of(model: object) -> str:
    assert isinstance(model, OpenAICompatibleModel)
    return model.host


async def test_exact_name_beats_prefix_and_longest_prefix_wins(models_file: Path) -> None:
    settings = Settings(models_file=models_file, upstream_base_url="http://default.test/v1")
    async with router_for(settings) as router:
        model, name = router.resolve("llama3")
        assert (host_of(model), name) == ("localhost:11434", "llama3.1:8b")
        model, name = router.resolve("gpt-4o")  # exact name beats the "gpt-" prefix
        assert (host_of(model), name) == ("localhost:11434", "gpt-4o")
        model, name = router.resolve("gpt-4o-mini")
        assert (host_of(model), name) == ("api.example.com", "gpt-4o-mini")
        model, name = router.resolve("gpt-4o-local-7b")  # the longer prefix wins
        assert (host_of(model), name) == ("localhost:11434", "gpt-4o-local-7b")
        model, name = router.resolve("mistral")
        assert (host_of(model), name) == ("default.test", "mistral")


async def test_providers_share_one_client_each(models_file: Path) -> None:
    async with router_for(Settings(models_file=models_file)) as router:
        assert router.resolve("llama3")[0] is router.resolve("gpt-4o")[0]


async def test_no_default_provider_raises_no_provider_for_model(models_file: Path) -> None:
    async with router_for(Settings(models_file=models_file)) as router:
        with pytest.raises(NoProviderForModel) as caught:
            router.resolve("mistral")
        assert isinstance(caught.value, UpstreamError) and "mistral" in caught.value.message
    async with router_for(Settings()) as router:
        with pytest.raises(NoProviderForModel):
            router.resolve("anything")


def test_api_key_env_is_read_at_load(models_file: Path) -> None:
    parsed = load_models_file(models_file, env={"HOSTED_KEY": "hosted-secret"})
    assert parsed.providers["hosted"].api_key == "hosted-secret"
    assert parsed.providers["ollama"].api_key == "ollama"
    with pytest.raises(ModelsFileInvalid, match="HOSTED_KEY"):
        load_models_file(models_file, env={})


PROVIDER_A = '[providers.a]\nbase_url = "http://x"\n'


@pytest.mark.parametrize(
    ("toml", "complaint"),
    [
        ("[providers.a\n", r"Expected '\]'"),
        ('[providers.a]\nbase-url = "http://x"\n', "unknown keys"),
        ('[providers.a]\nbase_url = "x"\n', "needs base_url"),
        (PROVIDER_A + 'api_key = "k"\napi_key_env = "K"\n', "not both"),
        ('[[models]]\nname = "m"\nprovider = "nope"\n', "provider 'nope'"),
        (PROVIDER_A + '[[models]]\nprovider = "a"\n', "exactly one of name or prefix"),
        (PROVIDER_A + '[[models]]\nname = "m"\nprefix = "m"\nprovider = "a"\n', "exactly one"),
        (PROVIDER_A + '[[models]]\nprefix = "m"\nprovider = "a"\nupstream_model = "x"\n', "not a prefix"),
        (PROVIDER_A + '[[models]]\nname = "m"\nprovider = "a"\n' * 2, "listed twice"),
        (PROVIDER_A + '[[models]]\nname = 3\nprovider = "a"\n', "must be a string"),
        ('models = "x"\n', "array"),
        ('[model]\nname = "x"\n', "top-level"),
    ],
)
def test_malformed_models_file_is_rejected_with_a_clear_error(
    tmp_path: Path, toml: str, complaint: str
) -> None:
    path = tmp_path / "models.toml"
    path.write_text(toml)
    with pytest.raises(ModelsFileInvalid, match=complaint) as caught:
        ProviderRouter.from_settings(Settings(models_file=path))
    assert isinstance(caught.value, ValueError) and str(path) in str(caught.value)


def test_missing_models_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelsFileInvalid, match=r"missing\.toml"):
        ProviderRouter.from_settings(Settings(models_file=tmp_path / "missing.toml"))


def test_default_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="THREADLINE_UPSTREAM_BASE_URL"):
        ProviderRouter.from_settings(Settings(upstream_base_url="localhost:8000"))
