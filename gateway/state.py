"""Typed keys for what the app and its requests carry."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from gateway import api, auth, clock, settings

SETTINGS = web.AppKey("settings", settings.Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
DB_URL = web.AppKey("db_url", str)
VERIFIER = web.AppKey("verifier", auth.TokenVerifier)
CLOCK = web.AppKey("clock", clock.Clock)
ENDPOINTS = web.AppKey("endpoints", dict[api.Handler, api.Endpoint])
