"""The Kafka topic every event of every agreement is published on (docs/CONTRACT.md, "Events").

Part of the contract: its name carries the envelope's major version.
"""

TOPIC = "agreements.events.v1"

# The transparency log's signed checkpoints (docs/CONTRACT.md B11): each record's value is one
# signed note (text/plain, C2SP tlog-checkpoint), its key the log's origin. A witness can
# follow it instead of polling GET /v1/log/checkpoint. At least once: a note may come twice.
CHECKPOINT_TOPIC = "agreements.checkpoints.v1"
