"""The Kafka topic every event of every agreement is published on (docs/CONTRACT.md, "Events").

Part of the contract: its name carries the envelope's major version.
"""

TOPIC = "agreements.events.v1"
