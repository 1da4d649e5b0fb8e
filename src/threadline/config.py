"""Settings: one typed object. Only ``cli.py`` builds it from flags and ``THREADLINE_*`` env vars;
everything else receives it. Nothing here reads the environment at import time."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./threadline-data")
    # Empty means SQLite at <data_dir>/threadline.db.
    database_url: str = ""
    # Empty means any bearer key is accepted (local development; logged at start-up).
    api_keys: tuple[str, ...] = ()
    # Run the run executor inside the API process (the embedded default).
    executor: bool = True
    # Upstream model provider (OpenAI-compatible chat completions).
    upstream_base_url: str = ""
    upstream_api_key: str = ""
    models_file: Path | None = None
    upstream_timeout_s: float = 600.0
    upstream_max_retries: int = 2
    # Embeddings for hybrid file_search; empty means keyword (BM25) search only.
    embeddings_base_url: str = ""
    embeddings_api_key: str = ""
    embeddings_model: str = ""
    max_upload_bytes: int = 512 * 1024 * 1024
    # Header the SDK's poll helpers read as their sleep interval.
    poll_after_ms: int = 100
    run_expiry_s: int = 600
    db_pool_size: int = 10
    db_statement_timeout_ms: int = 30_000
    # Run executors (embedded or `threadline worker`): a claimed run is leased for run_lease_s and the
    # lease renewed every run_heartbeat_s; a run whose lease lapses is taken over (failed) by another
    # executor. Executors poll for queued runs every run_poll_s besides waking on notifications.
    run_lease_s: float = 30.0
    run_heartbeat_s: float = 10.0
    run_poll_s: float = 1.0
    run_max_concurrent: int = 256
    # Admission (docs/limits.md): a new run is refused with 429 while this many runs are queued or
    # executing in the deployment (0: no bound); each API process holds at most max_streams event
    # streams (more: 429) and max_poll_holds held poll-helper GETs (more: answered at once).
    run_queue_max: int = 64
    # Per project (docs/security.md): runs queued or executing at once (more: 429; by default the
    # deployment's bound, to lower when projects share a server), and bytes of stored files (more:
    # 400 on upload). 0: no bound.
    project_max_active_runs: int = 64
    # Requests a minute per project, counted across processes (api/rate_limits.py); the default is
    # above what one machine serves, a ceiling to lower per deployment.
    project_requests_per_minute: int = 300_000
    project_storage_bytes: int = 10 * 1024**3
    max_streams: int = 1024
    max_poll_holds: int = 1024
    # `threadline worker` on SIGTERM: how long running runs may finish before they are failed.
    worker_grace_s: float = 10.0
    # The API processes' event loop: uvloop | asyncio | auto (uvloop when installed, as uvicorn
    # chooses). docs/performance.md ("Accepting connections") has the measurements behind the default.
    event_loop: str = "auto"
    # auto | memory | database: how run events reach streams (see events/database.py).
    event_bus: str = "auto"
    # Token deltas are coalesced per run: at most one event every event_coalesce_ms, or one per
    # event_coalesce_max deltas, whichever comes first (0 ms: one event per delta).
    event_coalesce_ms: float = 20.0
    event_coalesce_max: int = 16
    # For tests of the database bus: a delay before each append of run events (a slow writer), and
    # how long a quiet stream waits before it looks at its run itself.
    event_write_delay_s: float = 0.0
    event_stall_check_s: float = 5.0
    log_level: str = "info"
    workers: int = 1
    # --- Limits and faults (docs/limits.md lists each with what a client sees) ---
    # Largest JSON request body: a bigger Content-Length is refused (413) before any byte is read.
    max_json_body_bytes: int = 32 * 1024 * 1024
    # Text extraction, chunking and tokenizing run in this many child processes (reused), each
    # limited to ingestion_memory_bytes of address space and ingestion_cpu_s of CPU per file, and
    # killed after ingestion_timeout_s of wall time.
    ingestion_processes: int = 1
    ingestion_memory_bytes: int = 1024 * 1024 * 1024
    ingestion_cpu_s: int = 120
    ingestion_timeout_s: float = 150.0
    # OpenAI's per-file limit for file_search.
    ingestion_max_tokens: int = 5_000_000
    # A file whose indexing was claimed this many times without finishing (the process died with
    # it) fails instead of being retried again.
    ingestion_max_attempts: int = 3
    # Bytes kept in <data_dir>/.disk-reserve so that deletes can run on a full disk (0: none).
    disk_reserve_bytes: int = 16 * 1024 * 1024
    # How often the text an assistant message has streamed so far is saved (a crash loses at most this).
    stream_checkpoint_s: float = 1.0
    # code_interpreter (docs/code-interpreter.md): auto|bubblewrap run sessions in bubblewrap; none
    # disables the tool; unsandboxed runs model code WITHOUT isolation (development only).
    code_interpreter_backend: str = "auto"
    code_interpreter_python: str = ""  # the sandbox's interpreter; empty: the server's own
    code_interpreter_memory_mb: int = 1024
    code_interpreter_timeout_s: float = 60.0
    code_interpreter_max_processes: int = 64
    code_interpreter_max_file_mb: int = 100
    code_interpreter_cpu_s: int = 3600
    code_interpreter_idle_s: float = 3600.0
    code_interpreter_max_sessions: int = 16
    code_interpreter_output_chars: int = 20_000
    # text | json (one JSON object per line); see observability/logs.py.
    log_format: str = "text"
    # One line per request at INFO; false keeps the other INFO lines (runs, ingestion) and saves the
    # line's cost (≈ 30-60 µs of CPU per request in bench/core.py --observability-cost).
    access_log: bool = True
    # Prometheus metrics: on by default at GET /metrics on the API port; metrics_port > 0 serves them
    # on their own port instead (the only way `threadline worker`, which has no HTTP API, shows them).
    metrics: bool = True
    metrics_port: int = 0
    # serve --no-executor warns about runs queued this long that no worker claimed.
    unclaimed_run_warning_s: float = 30.0

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'threadline.db').resolve()}"


def _parse(kind: type | str, raw: str) -> object:
    kind_s = str(kind)
    if "bool" in kind_s:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if "int" in kind_s and "Path" not in kind_s:
        return int(raw)
    if "float" in kind_s:
        return float(raw)
    if "tuple" in kind_s:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if "Path" in kind_s:
        return Path(raw) if raw else None
    return raw


def settings_from_env(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from ``THREADLINE_<FIELD>`` variables, then explicit overrides (CLI flags)."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for f in fields(Settings):
        raw = env.get(f"THREADLINE_{f.name.upper()}")
        if raw is not None:
            values[f.name] = _parse(f.type, raw)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)  # type: ignore[arg-type]


def settings_to_json(settings: Settings) -> str:
    """Settings as one JSON string: how ``serve --workers N`` hands the exact Settings the CLI built
    to API processes that uvicorn spawns (they start from an import string, not from our objects)."""
    values: dict[str, object] = {}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        values[f.name] = value
    return json.dumps(values)


def settings_from_json(raw: str) -> Settings:
    """The inverse of ``settings_to_json``."""
    values: dict[str, object] = json.loads(raw)
    for f in fields(Settings):
        if f.name not in values or values[f.name] is None:
            continue
        kind = str(f.type)
        if "Path" in kind:
            values[f.name] = Path(str(values[f.name]))
        elif "tuple" in kind:
            values[f.name] = tuple(values[f.name])  # type: ignore[arg-type]
    return Settings(**values)  # type: ignore[arg-type]
