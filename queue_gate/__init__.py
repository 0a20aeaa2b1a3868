"""Queue gate: a virtual waiting room in front of the vaccination booking backend."""
