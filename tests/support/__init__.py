"""What the tests share: waiting for a counted event (`wait`), a database of a test's
own on the session's PostgreSQL (`database`), and the one fake of the Kubernetes edge
(`fake_kube`). A backend the operator has verified is a fixture of the cluster tier
(`tests.cluster.operator_fixtures.verified_backend`)."""
