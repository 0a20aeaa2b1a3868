"""Every object the gate keeps on its applications, under a typed key named like it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from queue_gate.addresses import AddressPolicy
from queue_gate.admission import RoomView
from queue_gate.health import BackendHealth, HealthReporter
from queue_gate.metrics import GateMetrics
from queue_gate.rooms import Rooms
from queue_gate.settings import Settings
from queue_gate.store import Clock, RedisClient, RoomStore
from vaccine_queue.pages import Pages

if TYPE_CHECKING:  # notify.py reads its collaborators through these keys
    from queue_gate.notify import Notifier

settings_key = web.AppKey("settings", Settings)
clock_key: web.AppKey[Clock] = web.AppKey("clock")
metrics_key = web.AppKey("metrics", GateMetrics)
pages_key = web.AppKey("pages", Pages)
address_policy_key = web.AppKey("address_policy", AddressPolicy)
control_redis_key: web.AppKey[RedisClient] = web.AppKey("control_redis")
# Every room this process serves, each with its visitor's path (arrival -> line -> pass),
# and the route table over them, built once Redis is open. Handlers find their room here.
rooms_key = web.AppKey("rooms", Rooms)
# The environment's room (QUEUE_GATE_ROOM): its store and view, for the health reporter,
# the console and tests. Handlers go through `rooms_key`.
store_key = web.AppKey("store", RoomStore)
room_view_key = web.AppKey("room_view", RoomView)
ticker_key = web.AppKey("ticker", asyncio.Task[None])
backend_session_key = web.AppKey("backend_session", aiohttp.ClientSession)
# Adaptive admission: this process's view of the backend, and what reports it to the room.
backend_health_key = web.AppKey("backend_health", BackendHealth)
health_reporter_key = web.AppKey("health_reporter", HealthReporter)
health_task_key = web.AppKey("health_task", asyncio.Task[None])
# The admin app reaches the gate's resources through the gate app it administers.
gate_app_key = web.AppKey("gate_app", web.Application)
# Turn messages (issue 16): the sender, and whether it runs as a task (tests run rounds).
notifier_key: web.AppKey[Notifier] = web.AppKey("notifier")
run_notifier_key = web.AppKey("run_notifier", bool)
