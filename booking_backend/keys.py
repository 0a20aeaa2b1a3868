"""Every `web.AppKey` and `web.RequestKey` of the booking backend, in one place.

(The request's language is `vaccine_queue.i18n.lang_key`, shared with the gate.)
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web
from itsdangerous import URLSafeTimedSerializer

from booking_backend.backend import Backend
from booking_backend.catalogue import CatalogueCache
from booking_backend.db import Database
from booking_backend.metrics import Metrics
from booking_backend.service import Service
from booking_backend.settings import Settings
from vaccine_queue.contract import AdmissionPass, PassCodec
from vaccine_queue.pages import Pages

if TYPE_CHECKING:
    from booking_backend.capacity import Capacity  # it reads these keys

backend_key: web.AppKey[Backend] = web.AppKey("backend")
settings_key: web.AppKey[Settings] = web.AppKey("settings")
metrics_key: web.AppKey[Metrics] = web.AppKey("metrics")
db_key: web.AppKey[Database] = web.AppKey("db")
catalogue_key: web.AppKey[CatalogueCache] = web.AppKey("catalogue")
service_key: web.AppKey[Service] = web.AppKey("service")
pass_codec_key: web.AppKey[PassCodec] = web.AppKey("pass_codec")
csrf_key: web.AppKey[URLSafeTimedSerializer] = web.AppKey("csrf")
pages_key: web.AppKey[Pages] = web.AppKey("pages")
outbox_task_key: web.AppKey[asyncio.Task[None]] = web.AppKey("outbox_task")
sweeper_task_key: web.AppKey[asyncio.Task[None]] = web.AppKey("sweeper_task")
capacity_key: web.AppKey[Capacity] = web.AppKey("capacity")

admission_key: web.RequestKey[AdmissionPass] = web.RequestKey("admission")
owner_key: web.RequestKey[str] = web.RequestKey("owner")
