"""The transparency log: an RFC 6962 / RFC 9162 Merkle tree over every event, signed as
C2SP tlog-checkpoints (signed notes, Ed25519), with inclusion and consistency proofs.

`merkle` and `note` are the pure core (no I/O).
"""
