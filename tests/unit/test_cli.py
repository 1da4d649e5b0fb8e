"""The CLI builds Settings from flags and THREADLINE_* variables; every setting has both."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from starlette.applications import Starlette

from threadline import cli
from threadline.config import Settings, settings_from_json, settings_to_json

# Every Settings field is a `serve` flag.
_NOT_FLAGS: set[str] = set()


def _serve_flags() -> set[str]:
    parser = cli._parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    serve = sub.choices["serve"]  # type: ignore[index]
    return {a.dest for a in serve._actions if a.dest != "help"}


def test_every_setting_is_a_serve_flag_named_after_its_env_var() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)} - _NOT_FLAGS
    assert fields - _serve_flags() == set(), "add a flag to cli._parser() for each new setting"
    parser = cli._parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    serve = sub.choices["serve"]  # type: ignore[index]
    for action in serve._actions:
        if action.dest in fields:
            assert f"THREADLINE_{action.dest.upper()}" in (action.help or ""), action.dest


def _settings(argv: list[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for key in [k for k in os.environ if k.startswith("THREADLINE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return cli._settings(cli._parser().parse_args(argv))


def test_scale_out_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings(
        [
            "serve",
            "--workers",
            "3",
            "--no-executor",
            "--db-pool-size",
            "4",
            "--db-statement-timeout-ms",
            "250",
        ],
        monkeypatch,
        {},
    )
    assert (s.workers, s.executor, s.db_pool_size, s.db_statement_timeout_ms) == (3, False, 4, 250)
    assert _settings(["serve"], monkeypatch, {}).executor is True
    assert _settings(["serve", "--executor"], monkeypatch, {"THREADLINE_EXECUTOR": "false"}).executor


def test_env_vars_and_flag_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "THREADLINE_WORKERS": "2",
        "THREADLINE_EXECUTOR": "false",
        "THREADLINE_DB_POOL_SIZE": "7",
        "THREADLINE_DATABASE_URL": "postgresql://db/x",
    }
    s = _settings(["serve"], monkeypatch, env)
    assert (s.workers, s.executor, s.db_pool_size, s.database_url) == (2, False, 7, "postgresql://db/x")
    assert _settings(["serve", "--workers", "4"], monkeypatch, env).workers == 4
    migrate = _settings(["migrate", "--db-statement-timeout-ms", "9"], monkeypatch, env)
    assert (migrate.db_statement_timeout_ms, migrate.db_pool_size) == (9, 7)


def test_settings_round_trip_through_json() -> None:
    settings = Settings(
        data_dir=Path("/srv/tl"),
        api_keys=("a", "b,c"),
        executor=False,
        models_file=Path("/m.toml"),
        workers=3,
        upstream_timeout_s=1.5,
    )
    assert settings_from_json(settings_to_json(settings)) == settings
    assert settings_from_json(settings_to_json(Settings())) == Settings()


def test_api_process_factory_reads_the_settings_the_cli_handed_down(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(database_url="postgresql://db/x", executor=False, api_keys=("k",), workers=2)
    monkeypatch.setenv(cli.SETTINGS_JSON_ENV, settings_to_json(settings))
    app = cli.api_process_app()  # builds only: nothing connects before the lifespan starts
    assert isinstance(app, Starlette)


def test_api_process_factory_falls_back_to_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.SETTINGS_JSON_ENV, raising=False)
    monkeypatch.setenv("THREADLINE_EXECUTOR", "false")
    assert isinstance(cli.api_process_app(), Starlette)


def test_event_loop_flag_and_a_bad_value_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert _settings(["serve", "--event-loop", "asyncio"], monkeypatch, {}).event_loop == "asyncio"
    assert _settings(["serve"], monkeypatch, {}).event_loop == "auto"
    monkeypatch.setenv("THREADLINE_EVENT_LOOP", "tokio")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--data-dir", str(tmp_path)])
    assert (
        exit_info.value.code
        == "threadline: error: THREADLINE_EVENT_LOOP must be one of asyncio, auto, uvloop"
    )
