"""Refresh rotation under contention: one conditional UPDATE decides, so exactly one caller wins."""

from __future__ import annotations

import asyncio
from typing import Any

from cynode.contracts.identity import RefreshRequest, TokenPair
from cynode.http.problems import ProblemError
from cynode.identity.audit import ClientInfo
from cynode.identity.service import IdentityService
from tests.fixtures.identity import Session
from tests.fixtures.stack import RunningStack

CONTENDERS = 8


def test_many_simultaneous_refreshes_of_one_token_have_exactly_one_winner(
    gateway_stack: RunningStack, admin_session: Session, db: Any
) -> None:
    context = gateway_stack.stack.context
    assert context is not None
    service = IdentityService(context.pool, context.signer, context.settings.identity)
    client = ClientInfo(ip="127.0.0.1", user_agent="race")

    async def contend() -> list[TokenPair | BaseException]:
        request = RefreshRequest(refresh_token=admin_session.refresh_token)
        return await asyncio.gather(
            *(service.refresh(request, client) for _ in range(CONTENDERS)), return_exceptions=True
        )

    outcomes = gateway_stack.run(contend())
    winners = [outcome for outcome in outcomes if isinstance(outcome, TokenPair)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, ProblemError)]
    assert len(winners) == 1
    assert len(losers) == CONTENDERS - 1
    assert {loser.status for loser in losers} == {401}

    # Each loser presented a retired token, which is what a stolen copy looks like: the session ends.
    assert db.execute("SELECT count(*) AS n FROM refresh_sessions WHERE is_active").fetchone()["n"] == 0
    reasons = db.execute(
        "SELECT reason, count(*) AS n FROM auth_audit_log WHERE event_type = 'refresh_failure' GROUP BY reason"
    ).fetchall()
    assert reasons == [{"reason": "refresh token reused", "n": CONTENDERS - 1}]
