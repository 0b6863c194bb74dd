"""Issue 11's attacks, replayed on the local cluster with the operator running.

Attack 1: a `run: Job` migration prints the URL (`sh -x`, echo) and fails; nothing
secret may reach status, Events, the operator's log, the backend's pod conditions or
`kubectl describe`. Attack 2, inside the operator: a DatabaseSchema naming a
Deployment whose owners did not consent runs no Job and says what to add: the label every
gated Deployment carries is no consent, only the annotation schemagate.io/clone-for on
the Deployment object is. And no Job runs while nothing checks its author's rights: the
operator waits for its admission policy binding.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import yaml

from localenv import operator as local_operator
from tests.cluster.operator_fixtures import stop_operator
from tests.cluster.scenario import Backend, Database
from tests.support.wait import wait_for

BACKEND_ENV = [{"name": "DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": "backend-db", "key": "DATABASE_URL"}}}]
#: A migration that shows everything it was given, then fails.
LEAKY = ["sh", "-x", "-c",
         'echo "connecting to $DATABASE_URL"; '
         'PGPASSWORD="${DATABASE_URL#*://*:}"; PGPASSWORD="${PGPASSWORD%%@*}"; '
         'echo "host=db password=$PGPASSWORD"; echo "$PGPASSWORD"; exit 3']


def spellings(password: str) -> set[str]:
    return {password, quote(password, safe=""), quote_plus(password)}


def everything_a_user_reads(backend: Backend, log: Path) -> dict[str, str]:
    return {
        "status": json.dumps(backend.get("dbschema", "backend-schema").get("status", {})),
        "events": json.dumps([{k: e.get(k) for k in ("reason", "message", "note")}
                              for e in backend.events()]),
        "kubectl describe dbschema": backend.kubectl("describe", "dbschema",
                                                     "backend-schema"),
        "kubectl describe backend pods": backend.kubectl("describe", "pods", "-l",
                                                         "app=backend-schema"),
        "operator log": log.read_text(),
    }


def test_a_migration_that_prints_the_url_leaks_no_password(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    password = "S3cret/p@ss w0rd!"  # percent-encoded in the URL
    backend.secret(db.url(password=password))
    db.admin(f"ALTER ROLE \"{db.user}\" PASSWORD '{password}'")
    backend.deployment(replicas=1, env=BACKEND_ENV)
    backend.schema(migrations={"run": "Job", "job": {
        "fromDeployment": {"name": "backend", "container": "app"}, "command": LEAKY}})

    failed = backend.wait_reason("MigrationFailed", timeout=60)
    assert "exit code 3" in failed["message"] and "***" in failed["message"], failed
    # The Job's pod (the backend's own pods carry schemagate.io/schema too).
    pod = json.loads(backend.kubectl("get", "pods", "-l",
                                     "schemagate.io/migration-of=backend-schema",
                                     "-o", "json"))["items"][0]
    printed = pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
    assert quote(password, safe="") in printed, "the attack printed the URL: the test is real"
    wait_for("the failure announced", lambda: any(
        e["reason"] == "MigrationFailed" for e in backend.events()), timeout=30)

    outputs = everything_a_user_reads(backend, operator.log)
    leaked = {where: sorted(s for s in spellings(password) if s in text)
              for where, text in outputs.items()}
    assert {where: found for where, found in leaked.items() if found} == {}
    assert db.password not in json.dumps(outputs)  # nor the role's first password


def test_a_deployment_whose_owners_did_not_consent_runs_no_job(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    # Another team's gated backend: the schema label on it and on its pods, no consent.
    backend.deployment(replicas=1, env=BACKEND_ENV, opt_in=False)
    deployment = backend.get("deployment", "backend")
    assert deployment["metadata"]["labels"]["schemagate.io/schema"] == "backend-schema"
    assert deployment["spec"]["template"]["metadata"]["labels"]["schemagate.io/schema"] == \
        "backend-schema"
    backend.schema(migrations={"run": "Job", "job": {
        "fromDeployment": {"name": "backend", "container": "app"},
        "command": ["sh", "-c", "env"]}})

    invalid = backend.wait_reason("InvalidSpec", timeout=30)
    assert invalid["message"] == (
        "migrations.job.fromDeployment: Deployment backend has not consented to migrations "
        "by DatabaseSchema backend-schema: its owners add that name to the Deployment's "
        "annotation schemagate.io/clone-for (kubectl annotate -n "
        f"{backend.namespace} deployment/backend schemagate.io/clone-for=backend-schema); "
        "until then no Job runs as that Deployment")
    stalled = backend.condition(type="Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
    assert json.loads(backend.kubectl("get", "jobs", "-o", "json"))["items"] == []

    # Its owners consent, this schema among others: the Job runs.
    backend.kubectl("annotate", "deployment/backend",
                    "schemagate.io/clone-for=payments-schema, backend-schema")
    wait_for("the migration Job", lambda: json.loads(backend.kubectl(
        "get", "jobs", "-o", "json"))["items"], timeout=30)


def test_the_api_server_refuses_a_command_no_program_could_receive(
        backend: Backend) -> None:
    def refusal(command: list[str]) -> str:
        manifest = {"apiVersion": "schemagate.io/v1alpha1", "kind": "DatabaseSchema",
                    "metadata": {"name": "hostile"},
                    "spec": {"database": {"urlSecretRef": {"name": "db", "key": "URL"}},
                             "tables": ["t"], "migrations": {"run": "Job", "job": {
                                 "fromDeployment": {"name": "backend"}, "command": command}}}}
        result = backend.cluster.kubectl("-n", backend.namespace, "create", "-f", "-",
                                         input=json.dumps(manifest))
        assert result.returncode != 0, result.stdout
        return result.stderr

    assert 'spec.migrations.job.command[0]: Invalid value: "sh\\x00": ' \
        "spec.migrations.job.command[0] in body should match" in refusal(["sh\x00"])
    assert "spec.migrations.job.command[0]: Too long: may not be more than 4096 bytes" \
        in refusal(["x" * 5000])
    assert "spec.migrations.job.command: Too many: 65: must have at most 64 items" \
        in refusal(["x"] * 65)


def author_rights_policy(name: str, namespace: str) -> list[dict[str, Any]]:
    """A policy and its binding named `name`, in force (Deny) in `namespace` only, and
    refusing nothing there: what the operator looks for is the binding."""
    admission = "admissionregistration.k8s.io/v1"
    return [
        {"apiVersion": admission, "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": name},
         "spec": {"failurePolicy": "Fail", "matchConstraints": {"resourceRules": [
             {"apiGroups": ["schemagate.io"], "apiVersions": ["*"],
              "operations": ["CREATE", "UPDATE"], "resources": ["databaseschemas"]}]},
             "validations": [{"expression": "true"}]}},
        {"apiVersion": admission, "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": name},
         "spec": {"policyName": name, "validationActions": ["Deny"],
                  "matchResources": {"namespaceSelector": {"matchLabels": {
                      "kubernetes.io/metadata.name": namespace}}}}}]


def test_no_job_runs_until_the_admission_policy_binding_is_in_force(
        backend: Backend, db: Database, tmp_path: Path) -> None:
    binding = f"sg-author-rights-{secrets.token_hex(3)}"
    operator = local_operator.start(backend.cluster.kubeconfig, [backend.namespace],
                                    tmp_path / "operator.log",
                                    extra_args=["--author-rights-binding", binding])
    policy = yaml.safe_dump_all(author_rights_policy(binding, backend.namespace))
    try:
        backend.secret(db.url())
        backend.deployment(replicas=1, env=BACKEND_ENV)  # its owners consent
        backend.schema(migrations={"run": "Job", "job": {
            "fromDeployment": {"name": "backend", "container": "app"},
            "command": ["sh", "-c", "exit 0"]}})

        invalid = backend.wait_reason("InvalidSpec", timeout=30)
        assert invalid["message"].startswith(
            "migrations.run: Job: the operator would create a Job or a pod with its own "
            f"rights, and the admission policy binding {binding}, which refuses a "
            "DatabaseSchema whose author lacks those rights, is not installed: nothing runs "
            "until it is in force."), invalid
        assert "authorRights.enabled=true" in invalid["message"]
        assert json.loads(backend.kubectl("get", "jobs", "-o", "json"))["items"] == []

        applied = backend.cluster.kubectl("apply", "-f", "-", input=policy)
        assert applied.returncode == 0, applied.stderr
        wait_for("the migration Job", lambda: json.loads(backend.kubectl(
            "get", "jobs", "-o", "json"))["items"], timeout=60)
    finally:
        stop_operator(backend.cluster, backend.namespace, operator)
        backend.cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input=policy)
