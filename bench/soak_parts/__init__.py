"""The soak's parts (bench/soak.py runs them): the traffic and what it expects, the sender, the
monitor sampling the run, and the verdicts checked at the end."""
