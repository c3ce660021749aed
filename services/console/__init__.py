"""The officials' console: server-rendered Vietnamese pages for the people whose work the registry
records (issue 23). It talks to the registry and the projections only over their public HTTP
contract, like any other system, and holds no state but encrypted-cookie sessions."""
