"""`verifyFrom: Pod`: the check run where the backend stands (pure), by concern:
`manifest` (the pod cloned from the backend), `termination` (the verdict through the
container's termination message), `progress` (what a verify pod's state means, which
pods go), `loopback` (which URLs only the backend's own pods can reach)."""
