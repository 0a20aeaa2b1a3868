"""The foundation both services stand on, and the only code they share.

- `contract`: what crosses between the queue gate and the booking backend (the pass and
  ticket formats, cookie and header names, the end-session header);
- `config`: reading settings from the environment, with one meaning for every flag;
- `i18n`: one language choice and one catalogue of every text, German and English;
- `pages`: rendering the pages citizens see, and one error middleware;
- `lua`: loading the Lua scripts of both services and reading their named replies.

This package imports neither `queue_gate` nor `booking_backend` (a test checks it).
"""
