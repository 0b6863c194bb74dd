"""The local environment for tests and `make demo`: an embedded PostgreSQL and a
local Kubernetes control plane. Never imported by the operator itself."""
