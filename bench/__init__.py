"""Launch-day benchmark of the queue gate: `python -m bench.launch [--quick]` (issue #6)."""
