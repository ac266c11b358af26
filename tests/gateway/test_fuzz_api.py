"""The whole API fuzzed with schemathesis against the served OpenAPI document: every
operation, called with a token of a role it allows, answers no 5xx, only documented
status codes and content types, and bodies that match the documented schemas."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import hypothesis
import schemathesis
from schemathesis import checks

from tests.support import proc
from tests.support.tenants import Tenant

EXAMPLES = 12  # per operation; the suite runs twice in CI
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def _order(label: str) -> tuple[int, str]:
    # Destructive calls last, so they do not take the tokens away from the rest.
    return (2 if label == "DELETE /v1/me" else 1 if label.startswith("DELETE") else 0, label)


def _fuzz(url: str, spec: dict[str, Any], tokens: dict[str, str]) -> tuple[int, list[str]]:
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: _order(op.label))
    calls = 0
    failures: list[str] = []

    def run(op: Any, headers: dict[str, str]) -> None:
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=op.as_strategy())
        def check(case: Any) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=url, headers=headers, timeout=15)
            case.validate_response(response, checks=CHECKS)

        check()

    for op in operations:
        raw = spec["paths"][op.path][op.method.lower()]
        if "text/event-stream" in str(raw.get("responses", {})):
            continue  # the SSE stream never ends; tests/gateway/test_inbox.py covers it
        roles = raw.get("x-roles") or []
        headers = {"Authorization": f"Bearer {tokens[roles[0]]}"} if roles else {}

        try:
            run(op, headers)
        except BaseException as exc:  # failing examples: keep going, report them all
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            failures.append(f"{op.label}: {str(exc)[:800]}")
    return calls, failures


async def test_fuzzing_every_operation_finds_no_5xx_and_no_schema_mismatch(
    database_url: str, tenant_a: Tenant, tmp_path: Path
) -> None:
    environ = proc.env(
        database_url,
        tmp_path,
        GATEWAY_LOG_LEVEL="WARNING",
        GATEWAY_PING_RATE="100000",
        GATEWAY_PING_BURST="100000",
        GATEWAY_REDEEM_RATE="100000",
        GATEWAY_REDEEM_BURST="100000",
        GATEWAY_PASS_PUSHER="0",
    )
    served = proc.Served(proc.free_port(), environ, log_file=tmp_path / "serve.log")
    await served.start()
    try:
        await served.wait_ready()
        async with aiohttp.ClientSession() as http, http.get(f"{served.url}/openapi.json") as r:
            spec = await r.json()
        calls, failures = await asyncio.to_thread(_fuzz, served.url, spec, tenant_a.tokens)
    finally:
        await served.stop()
    print(f"schemathesis: {calls} calls over {len(spec['paths'])} paths")
    assert calls > 300, failures[:3]
    assert not failures, "\n\n".join(failures)
