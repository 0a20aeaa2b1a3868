"""The polling load a waiting population causes, from the gate's own poll schedule.

A visitor at place p waits p * 60 / rate seconds and polls every
clamp(wait / 10, poll_min, poll_max) * uniform(0.8, 1.2) seconds (`RoomView.poll_after`),
so a queue of W visitors costs sum over p of E[1 / interval(p)] polls per second.
"""

from __future__ import annotations

import math

from queue_gate.settings import DEFAULT_POLL_MAX_S, DEFAULT_POLL_MIN_S

JITTER = 0.2
# The gate's own defaults, so the model follows when they change.
POLL_MIN_S = DEFAULT_POLL_MIN_S
POLL_MAX_S = DEFAULT_POLL_MAX_S
# E[1 / U] for U uniform on [1 - JITTER, 1 + JITTER]
MEAN_INVERSE_JITTER = math.log((1 + JITTER) / (1 - JITTER)) / (2 * JITTER)


def polls_per_second(waiting: int, rate_per_minute: float, poll_min_s: float = POLL_MIN_S,
                     poll_max_s: float = POLL_MAX_S) -> float:
    """Status polls per second that `waiting` visitors cause when they poll as told."""
    if waiting <= 0:
        return 0.0
    per_place_s = 60.0 / rate_per_minute / 10  # interval grows by this much per place
    # Places up to p_min poll at poll_min, from p_max on at poll_max, between: linear.
    p_min = min(waiting, int(poll_min_s / per_place_s))
    p_max = min(waiting, int(poll_max_s / per_place_s))
    total = p_min / poll_min_s
    if p_max > p_min:
        total += math.log(p_max / max(p_min, 1)) / per_place_s
    total += (waiting - p_max) / poll_max_s
    return total * MEAN_INVERSE_JITTER


def population_for(polls_per_s: float, rate_per_minute: float,
                   poll_min_s: float = POLL_MIN_S, poll_max_s: float = POLL_MAX_S) -> int:
    """The largest waiting population whose polls fit in `polls_per_s`."""
    low, high = 0, 1
    while polls_per_second(high, rate_per_minute, poll_min_s, poll_max_s) <= polls_per_s:
        low, high = high, high * 2
        if high > 10**9:
            return high
    while high - low > 1:
        middle = (low + high) // 2
        if polls_per_second(middle, rate_per_minute, poll_min_s, poll_max_s) <= polls_per_s:
            low = middle
        else:
            high = middle
    return low
