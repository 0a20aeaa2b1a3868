"""Every `web.AppKey` and `web.RequestKey` of the booking backend, in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from itsdangerous import URLSafeTimedSerializer

from booking_backend.backend import Backend
from booking_backend.catalogue import CatalogueCache
from booking_backend.metrics import Metrics
from booking_backend.service import Service
from booking_backend.settings import Settings
from booking_backend.store import Store
from queue_gate.tickets import AdmissionPass, PassVerifier

Render = Callable[..., web.Response]

backend_key: web.AppKey[Backend] = web.AppKey("backend")
settings_key: web.AppKey[Settings] = web.AppKey("settings")
metrics_key: web.AppKey[Metrics] = web.AppKey("metrics")
store_key: web.AppKey[Store] = web.AppKey("store")
catalogue_key: web.AppKey[CatalogueCache] = web.AppKey("catalogue")
service_key: web.AppKey[Service] = web.AppKey("service")
pass_verifier_key: web.AppKey[PassVerifier] = web.AppKey("pass_verifier")
csrf_key: web.AppKey[URLSafeTimedSerializer] = web.AppKey("csrf")
render_key: web.AppKey[Render] = web.AppKey("render")
outbox_task_key: web.AppKey[asyncio.Task[None]] = web.AppKey("outbox_task")
sweeper_task_key: web.AppKey[asyncio.Task[None]] = web.AppKey("sweeper_task")

lang_key: web.RequestKey[str] = web.RequestKey("lang")
admission_key: web.RequestKey[AdmissionPass] = web.RequestKey("admission")
owner_key: web.RequestKey[str] = web.RequestKey("owner")
