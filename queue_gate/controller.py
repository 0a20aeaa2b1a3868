"""The constants of adaptive admission's controller (lua/health-3.lua applies them).

Additive increase, multiplicative decrease, with a stop: TCP's congestion control, which
finds a shared bottleneck's capacity without knowing it and backs off fast when it is
overrun. Here the bottleneck is the booking backend and the window is the admission rate.
- While the backend answers nothing: 0, at once (no admission is spent on a dead backend).
- When it answers again: rate_min (at least one step), then the climb.
- In trouble (slow, failing, its connections used up, a low capacity hint): x DECREASE_FACTOR,
  at most once per DECREASE_HOLD_S (visitors admitted before a cut keep arriving for a
  while; cutting again before that shows would overshoot), never below rate_min.
- Healthy: + rate_max x DECIDE_EVERY_S / RAMP_S per decision, up to rate_max: from 0 to
  the full rate in RAMP_S seconds of health.
"""

from __future__ import annotations

# One room-wide decision per period (whichever gate process reports first after it).
DECIDE_EVERY_S = 2.0
DECREASE_FACTOR = 0.5
DECREASE_HOLD_S = 6.0
RAMP_S = 30.0
# A process's verdict counts this long: a stopped process's is dropped after it.
VERDICT_TTL_S = 10.0
