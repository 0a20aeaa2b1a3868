"""Tests start their own Redis: see `queue_gate.devredis`."""

from queue_gate.devredis import free_port, private_redis

__all__ = ["free_port", "private_redis"]
