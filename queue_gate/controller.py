"""The constants of adaptive admission's controller (lua/health-3.lua applies them).

Additive increase, multiplicative decrease, with a stop: TCP's congestion control, which
finds a shared bottleneck's capacity without knowing it and backs off fast when it is
overrun. Here the bottleneck is the booking backend and the window is the admission rate.
- While the backend answers nothing: 0, at once (no admission is spent on a dead backend).
- When it answers again: rate_min (at least one step), then x2 per decision up to
  REGAIN_SHARE of rate_max (TCP's slow start, its threshold half the ceiling), ended early
  by the first trouble; then the climb.
- In trouble (slow, failing, its connections used up, a low capacity hint): x DECREASE_FACTOR,
  at most once per DECREASE_HOLD_S (visitors admitted before a cut keep arriving for a
  while; cutting again before that shows would overshoot), never below rate_min.
- Healthy: + rate_max x DECIDE_EVERY_S / RAMP_S per decision, up to rate_max: from 0 to
  the full rate in RAMP_S seconds of health.

Why these values (bench.adaptive, docs/benchmarks.md "Adaptive admission"). An admission
loads the backend for as long as its visitor books (four requests and a text message:
several seconds, longer when the backend queues), so a cut shows only after that, and the
backend's queue must drain before its verdicts say "ok" again. With a factor of 0.5 and a
6 s hold the controller cut three times in 12 s at half capacity (360 -> 45 a minute)
while the first cut's effect was still on its way, then climbed back linearly for 30 s:
it admitted 150 a minute on average where the backend served 225, and booked a quarter
fewer than a fixed rate that kept the backend saturated. Now each cut is shallower
(0.7, the factor of TCP CUBIC) and the next waits 10 s, about the time a booking takes
under load, so the rate settles near the backend's capacity rather than far below it.
After an outage the linear climb from rate_min took 39 s to the full rate: slow start
regains half of it in three decisions (30 -> 60 -> 120 -> 180 at rate_max 360), the rest
linearly, so a backend that returned with less capacity is still probed gently.
"""

from __future__ import annotations

# One room-wide decision per period (whichever gate process reports first after it).
DECIDE_EVERY_S = 2.0
DECREASE_FACTOR = 0.7
DECREASE_HOLD_S = 10.0
RAMP_S = 30.0
# After an outage the rate doubles each decision up to this share of rate_max.
REGAIN_SHARE = 0.5
# A process's verdict counts this long: a stopped process's is dropped after it.
VERDICT_TTL_S = 10.0
