"""The executors' bookkeeping over every project's runs: renewing their leases, finding runs no live
executor holds, and runs due to expire. Each function is one statement's worth of work inside the
caller's transaction; storage refuses them inside a project's scope (``require_bookkeeping``)."""

from __future__ import annotations

from threadline.storage.uow import UnitOfWork


def renew(
    uow: UnitOfWork, owner: str, run_ids: list[str], until_s: float
) -> dict[str, tuple[str, str | None]]:
    """Extend ``owner``'s leases on ``run_ids`` to ``until_s``; for each run still found, its status
    and its lease owner after the renewal (another owner: the lease was lost; none: it ended)."""
    return uow.runs.renew_leases(owner, run_ids, until_s)


def orphans(uow: UnitOfWork, now_s: float) -> list[str]:
    """Runs in a leased status whose lease is missing or ran out before ``now_s``."""
    return uow.runs.orphan_ids(now_s)


def leased(uow: UnitOfWork) -> list[tuple[str, str]]:
    """``(run id, lease owner)`` of every leased run (to find owners that died on this host)."""
    return uow.runs.lease_owners()


def due_to_expire(uow: UnitOfWork, now_s: float, owner: str) -> list[str]:
    """Live runs past ``expires_at`` that no other live executor holds."""
    return uow.runs.ids_due_to_expire(int(now_s), owner, now_s)
