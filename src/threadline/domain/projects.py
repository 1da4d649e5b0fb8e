"""Projects, their service accounts and API keys, and who is calling.

Every object belongs to one project; a project key reaches only its project's objects. Keys are
generated here (``sk-proj-`` / ``sk-admin-`` and 48 random URL-safe characters, 288 bits), shown once
and stored only as their SHA-256: a key has far too much entropy for a fast hash to be a weakness,
and the hash is what the lookup index holds.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass

# Existing databases' objects, and keys listed in THREADLINE_API_KEYS, belong to this project.
DEFAULT_PROJECT_ID = "proj_default"
DEFAULT_PROJECT_NAME = "default"

PROJECT_KEY_PREFIX = "sk-proj-"
ADMIN_KEY_PREFIX = "sk-admin-"


class KeyKind(enum.StrEnum):
    PROJECT = "project"
    ADMIN = "admin"


@dataclass(slots=True)
class Project:
    id: str
    name: str
    created_at: int
    archived_at: int | None

    @property
    def status(self) -> str:
        return "active" if self.archived_at is None else "archived"


@dataclass(slots=True)
class ServiceAccount:
    id: str
    project_id: str
    name: str
    role: str
    created_at: int


@dataclass(slots=True)
class ApiKey:
    id: str
    kind: KeyKind
    project_id: str | None  # None for an admin key
    service_account_id: str | None
    name: str
    redacted_value: str
    created_at: int
    last_used_at: int | None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a project key, an admin key, or anyone (no keys configured)."""

    kind: KeyKind | None  # None: development mode, any key accepted
    project_id: str | None
    key_id: str  # for the access log: a key's id, ``key-<n>`` for THREADLINE_API_KEYS, or ``open``


def new_secret(kind: KeyKind) -> str:
    prefix = ADMIN_KEY_PREFIX if kind is KeyKind.ADMIN else PROJECT_KEY_PREFIX
    return prefix + secrets.token_urlsafe(36)


def key_hash(secret: bytes | str) -> str:
    raw = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(raw).hexdigest()


def redact(secret: str) -> str:
    """OpenAI's ``redacted_value`` shape: the prefix, a few leading characters, ``****``, the last four."""
    prefix = ADMIN_KEY_PREFIX if secret.startswith(ADMIN_KEY_PREFIX) else PROJECT_KEY_PREFIX
    body = secret[len(prefix) :]
    return f"{prefix}{body[:4]}****{body[-4:]}"
