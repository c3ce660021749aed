"""The audit replay tool: `python -m services.audit verify|rebuild|diff|swap|party`.

It trusts neither the running services nor the read models: it reads the event store
and the Kafka topic themselves, recomputes every hash, and rebuilds read models with the
same `readmodels.apply` the live projection uses.
"""
