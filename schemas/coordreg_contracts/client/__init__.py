"""A Python client of the registry and the projections that follows the contract's rules
(docs/CONTRACT.md; docs/CLIENTS.md, "Python"). Needs the `client` extra:
`pip install "coordreg-contracts[client]"` (httpx)."""

from coordreg_contracts.client.http import Coordreg, ProjectionsClient, RegistryClient, Session
from coordreg_contracts.client.problems import Problem, RetriesExhausted
from coordreg_contracts.client.retry import RetryPolicy

__all__ = [
    "Coordreg",
    "Problem",
    "ProjectionsClient",
    "RegistryClient",
    "RetriesExhausted",
    "RetryPolicy",
    "Session",
]
