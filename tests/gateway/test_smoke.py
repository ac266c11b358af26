from __future__ import annotations

from tests.support.client import ApiClient
from tests.support.tenants import Tenant


async def test_health(api: ApiClient) -> None:
    r = await api.get("/healthz")
    assert r.status == 200
    r = await api.get("/readyz")
    assert r.status == 200 and r.json["schema_version"] >= 1


async def test_whoami(api: ApiClient, tenant_a: Tenant) -> None:
    r = await api.get("/v1/auth/whoami", token=tenant_a.tokens["manager"])
    assert r.status == 200, r.body
    assert r.json["merchant_id"] == str(tenant_a.merchant_id)
