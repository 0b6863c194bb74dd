"""The only module that talks to the Kubernetes API.

Blocking calls of the official client; callers on Kopf's event loop run them with
`asyncio.to_thread`. Functions return plain data the core understands.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from schemagate.core.gate.readiness import PodCondition
from schemagate.core.migration.job import LastWords, last_words
from schemagate.core.status.outcome import for_people
from schemagate.core.tenancy import limits
from schemagate.core.tenancy.scrub import Scrubber, escape_controls
from schemagate.core.verify_pod.manifest import VERIFY_LABEL
from schemagate.core.wire import models

JSON = dict[str, Any]
Body = Mapping[str, Any]
#: What a failed call raises, for callers that say it in one line (`describe`).
ApiError = ApiException


class KubeError(Exception):
    """The API server did not give what was asked; the text never holds a Secret's value."""


class SecretNotFound(KubeError):
    """The Secret or its key is missing; the message names which, never a value."""


class ValueTooLarge(KubeError):
    """The Secret's value is over its limit; the message says its size, never its text."""


class Conflict(KubeError):
    """Someone else wrote the object since we read it (409)."""


#: Seconds any one API call may take when its caller names no other deadline: an API
#: server whose etcd is gone accepts the request and answers only at its own 60 s.
REQUEST_TIMEOUT = 15.0


def describe(exc: BaseException) -> str:
    """One line for a log: the client's ApiException prints its headers and body over
    many lines; this says the status and the API server's own message."""
    if isinstance(exc, ApiException):
        message = ""
        try:
            message = json.loads(exc.body or "{}").get("message") or ""
        except (ValueError, AttributeError):
            message = str(exc.body or "")
        text = f"the API server answered {exc.status} {exc.reason or ''}".rstrip()
        return " ".join(f"{text}: {message}".split()) if message else text
    return " ".join(str(exc).split()) or type(exc).__name__


#: Called with (verb, resource) for every request the client sends.
OnRequest = Callable[[str, str], None]
_PATH = re.compile(r"^/(?:api/v1|apis/[^/]+/[^/]+)(?:/namespaces/[^/]+)?/([^/?]+)(/[^/?]+)?"
                   r"(?:/([^/?]+))?$")


def resource_of(path: str) -> str:
    """`pods/status` for /api/v1/namespaces/ns/pods/p/status, `namespaces` for a namespace."""
    return _request_of("GET", path)[1]


def _request_of(method: str, path: str) -> tuple[str, str]:
    """The API's own verb and resource of a request: GET of a collection is `list`."""
    plain, _, query = path.partition("?")
    verb = method.lower()
    match = _PATH.match(plain)
    if match is None:
        return verb, "other"
    kind, name, sub = match.groups()
    if verb == "get" and name is None:
        verb = "watch" if "watch=true" in query.lower() else "list"
    return verb, f"{kind}/{sub}" if sub else kind


class RequestCounter:
    """Requests by (verb, resource), for `schemagate_api_requests_total` and the tests."""

    def __init__(self, on_request: OnRequest | None = None) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._on_request = on_request

    def __call__(self, method: str, url: str) -> None:
        path = url.split("://", 1)[-1]
        path = path[path.find("/"):] if "/" in path else "/"
        key = _request_of(method, path)
        with self._lock:
            self.counts[key] += 1
        if self._on_request is not None:
            self._on_request(*key)


class _Client(client.ApiClient):
    """The official client with a deadline on every call (it has none by default), and
    each request counted."""

    def __init__(self, configuration: client.Configuration, counter: RequestCounter) -> None:
        super().__init__(configuration)
        self.counter = counter

    def call_api(self, method: Any, url: Any, header_params: Any = None, body: Any = None,
                 post_params: Any = None, _request_timeout: Any = None) -> Any:
        self.counter(method, url)
        return super().call_api(method, url, header_params, body, post_params,
                                _request_timeout or REQUEST_TIMEOUT)


def connect(kubeconfig: str | None = None, on_request: OnRequest | None = None
            ) -> client.ApiClient:
    """In-cluster when running in a pod, else the kubeconfig (KUBECONFIG or the given path).

    One client per process: its connection pool keeps the TLS connections to the API
    server open between requests. `on_request` is told of each request."""
    try:
        config.load_incluster_config()
        configuration = client.Configuration.get_default_copy()
    except config.ConfigException:
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    # Gates are patched in parallel; the default pool (5 per CPU) would drop connections.
    configuration.connection_pool_maxsize = 32
    return _Client(configuration, RequestCounter(on_request))


class Kube:
    """The API as the operator uses it. The free text written back (status messages, pod
    condition messages) or read from tenants' pods (Job termination messages) passes the
    scrubber of the schema it is about: the last line of defence for what leaves."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.admission = client.AdmissionregistrationV1Api(api)

    def _raw(self, call: Any, *args: Any) -> JSON | None:
        """The object as the API serves it (camelCase JSON), or None when absent."""
        try:
            response = call(*args, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        obj: JSON = json.loads(response.data)
        return obj

    def deployment(self, namespace: str, name: str) -> JSON | None:
        return self._raw(self.apps.read_namespaced_deployment, name, namespace)

    def admission_policy_binding(self, name: str) -> JSON | None:
        """The ValidatingAdmissionPolicyBinding `name` (cluster-scoped: the chart grants
        `get` on that one name), or None. A 403 is raised: the caller says so."""
        return self._raw(self.admission.read_validating_admission_policy_binding, name)

    def config_map(self, namespace: str, name: str) -> JSON | None:
        return self._raw(self.core.read_namespaced_config_map, name, namespace)

    def job(self, namespace: str, name: str) -> JSON | None:
        return self._raw(self.batch.read_namespaced_job, name, namespace)

    def create_job(self, namespace: str, manifest: JSON) -> None:
        try:
            body: Any = manifest  # the client accepts plain JSON; its stubs say V1Job
            self.batch.create_namespaced_job(namespace, body)
        except ApiException as exc:
            if exc.status != 409:  # created by our previous life: the same Job, by name
                raise

    def job_last_words(self, namespace: str, job: str, scrubber: Scrubber
                       ) -> LastWords | None:
        """How the Job's newest ended container ended, its message scrubbed."""
        response: Any = self.core.list_namespaced_pod(
            namespace, label_selector=f"batch.kubernetes.io/job-name={job}",
            _preload_content=False)
        return last_words(json.loads(response.data)["items"], scrubber)

    def ensure_service_account(self, namespace: str, manifest: JSON) -> None:
        """Create the ServiceAccount unless it exists (create only: no get, no update)."""
        try:
            body: Any = manifest
            self.core.create_namespaced_service_account(namespace, body,
                                                        _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:
                raise

    # verifyFrom: Pod - the verify pods, listed by their label, followed and deleted by
    # the uid their create answered.

    def create_pod(self, namespace: str, manifest: JSON) -> JSON:
        """Creates the pod (named by the API server from `generateName`); returns it."""
        body: Any = manifest  # plain JSON, as for Jobs
        response: Any = self.core.create_namespaced_pod(namespace, body,
                                                        _preload_content=False)
        created: JSON = json.loads(response.data)
        return created

    def verify_pods(self, namespace: str, schema: str) -> list[JSON]:
        response: Any = self.core.list_namespaced_pod(
            namespace, label_selector=f"{VERIFY_LABEL}={schema}", _preload_content=False)
        pods: list[JSON] = json.loads(response.data)["items"]
        return pods

    def verify_pod(self, namespace: str, name: str) -> JSON | None:
        """One pod by name, through `list` (the operator holds no `get` on pods)."""
        response: Any = self.core.list_namespaced_pod(
            namespace, field_selector=f"metadata.name={name}", _preload_content=False)
        items: list[JSON] = json.loads(response.data)["items"]
        return items[0] if items else None

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """Deletes the pod `name` only while it is the one with `uid` (the one we created):
        a pod of that name made by someone else since is left alone."""
        options = client.V1DeleteOptions(grace_period_seconds=0,
                                          preconditions=client.V1Preconditions(uid=uid))
        try:
            self.core.delete_namespaced_pod(name, namespace, body=options,
                                            _preload_content=False)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone already, or not the pod we created
                raise

    def read_secret_value(self, namespace: str, ref: models.SecretKeyRef) -> str:
        try:
            secret = self.core.read_namespaced_secret(ref.name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise SecretNotFound(
                    f"Secret {ref.name} not found in namespace {namespace}") from None
            raise
        data = secret.data or {}
        if ref.key not in data:
            keys = ", ".join(sorted(data)) or "none"
            raise SecretNotFound(f"Secret {ref.name} in namespace {namespace} has no key "
                                 f"{ref.key} (its keys: {keys})")
        raw = base64.b64decode(data[ref.key]).strip()
        # Measured before anything reads it: the scrubber and the URL parser are linear,
        # but on a bounded input only.
        if (too_large := limits.url_too_large(ref.name, ref.key, len(raw))) is not None:
            raise ValueTooLarge(too_large)
        value = raw.decode("utf-8").strip()
        return value

    def set_pod_condition(self, namespace: str, pod: str, condition_type: str,
                          wanted: PodCondition, transition_time: str,
                          scrubber: Scrubber, generation: int | None = None) -> None:
        """`generation`: the pod's metadata.generation the condition was decided on."""
        condition: JSON = {
            "type": condition_type,
            "status": "True" if wanted.status else "False",
            "reason": wanted.reason,
            "message": scrubber.message(wanted.message),
            "lastTransitionTime": transition_time,
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        body = {"status": {"conditions": [condition]}}
        try:
            # Strategic merge keyed by `type`: the kubelet's conditions survive.
            response: Any = self.core.patch_namespaced_pod_status(pod, namespace, body,
                                                                  _preload_content=False)
            # Read to the end: only then does the connection go back to the pool, and the
            # next patch reuses it instead of a new TLS handshake. Not parsed.
            response.data  # noqa: B018
        except ApiException as exc:
            if exc.status != 404:  # a pod deleted meanwhile needs no gate
                raise

    def release_start_gate(self, namespace: str, name: str, uid: str, gate: str
                           ) -> int | None:
        """Removes the scheduling gate `gate` from the pod `name` while it is the pod with
        `uid`; returns the pod's generation after that, or None when the pod is gone or is
        another pod of that name. A gate already removed changes nothing."""
        # Strategic merge keyed by `name`: the other scheduling gates stay. The uid in
        # the patch is a precondition: for another pod of that name the API server
        # refuses it, as a change of the immutable metadata.uid (422).
        body = {"metadata": {"uid": uid},
                "spec": {"schedulingGates": [{"name": gate, "$patch": "delete"}]}}
        try:
            response: Any = self.core.patch_namespaced_pod(
                name, namespace, body, _preload_content=False,
                _content_type="application/strategic-merge-patch+json")
        except ApiException as exc:
            if exc.status in (404, 409) or (exc.status == 422 and _refused_field(
                    exc, "metadata.uid")):
                return None
            raise
        generation = json.loads(response.data)["metadata"].get("generation")
        return generation if isinstance(generation, int) else None

    def database_schema(self, namespace: str, name: str) -> JSON | None:
        try:
            obj: Any = self.custom.get_namespaced_custom_object(
                models.GROUP, models.VERSION, namespace, models.PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(obj)

    def patch_status(self, namespace: str, name: str, status: JSON,
                     scrubber: Scrubber) -> None:
        """Writes `status`, its free text through the schema's `scrubber` (keys, reasons,
        names and timestamps as they are)."""
        try:
            self.custom.patch_namespaced_custom_object_status(
                models.GROUP, models.VERSION, namespace, models.PLURAL, name,
                {"status": for_people(status, scrubber.message, escape_controls)})
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile
                raise


def _refused_field(exc: ApiException, field: str) -> bool:
    """The API server's 422 names `field` among its causes."""
    try:
        status = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return False
    causes = (status.get("details") or {}).get("causes") or () if isinstance(
        status, dict) else ()
    return any(isinstance(c, dict) and c.get("field") == field for c in causes)


class PersonsKube:
    """The API as a person's `kubectl schemagate` reads it: with their kubeconfig and
    context, their own rights, and nothing written but the rerun annotation."""

    #: Pods of a namespace read at most, in one page: the screens are for people.
    POD_LIMIT = 5000
    #: Events about one object read at most.
    EVENT_LIMIT = 200

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self._kube = Kube(api)

    def database_schema(self, name: str) -> JSON | None:
        return self._kube.database_schema(self.namespace, name)

    def database_schemas(self) -> list[JSON]:
        found: Any = self._kube.custom.list_namespaced_custom_object(
            models.GROUP, models.VERSION, self.namespace, models.PLURAL)
        return sorted(found.get("items") or [], key=lambda o: o["metadata"]["name"])

    def pods(self) -> list[JSON]:
        response: Any = self._kube.core.list_namespaced_pod(
            self.namespace, limit=self.POD_LIMIT, _preload_content=False)
        items: list[JSON] = json.loads(response.data)["items"]
        return items

    def pod(self, name: str) -> JSON | None:
        return self._kube._raw(self._kube.core.read_namespaced_pod, name, self.namespace)

    def events_about(self, kind: str, name: str) -> list[JSON]:
        response: Any = self._kube.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.kind={kind},"
            f"involvedObject.name={name}", limit=self.EVENT_LIMIT, _preload_content=False)
        items: list[JSON] = json.loads(response.data)["items"]
        return items

    def job(self, name: str) -> JSON | None:
        return self._kube.job(self.namespace, name)

    def annotate_database_schema(self, name: str, key: str, value: str) -> None:
        """Sets one annotation with a merge patch, as `kubectl annotate --overwrite` does:
        the API server applies the person's RBAC and the admission policies to it."""
        self._kube.custom.patch_namespaced_custom_object(
            models.GROUP, models.VERSION, self.namespace, models.PLURAL, name,
            {"metadata": {"annotations": {key: value}}})


def connect_as_person(kubeconfig: str | None, context: str | None
                      ) -> tuple[client.ApiClient, str]:
    """A client from the kubeconfig (the file given, else KUBECONFIG, else
    ~/.kube/config) and its `context` (else the current one), and the namespace that
    context names (else `default`). Raises ConfigError when the kubeconfig cannot be used."""
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=context,
                                client_configuration=configuration, persist_config=False)
    except (config.ConfigException, OSError) as exc:
        raise ConfigError(f"cannot use the kubeconfig: {describe(exc)}") from None
    chosen: JSON = next((c for c in contexts if c.get("name") == (context or (current or {}).get(
        "name"))), {})
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    return _Client(configuration, RequestCounter()), str(namespace)


class ConfigError(Exception):
    """The kubeconfig or its context cannot be used."""


# The leader-election Lease (schemagate.leader). Each call has its own deadline: a leader
# that cannot renew within its renew deadline must know it, not wait on a socket.

def _lease_body(namespace: str, name: str, spec: JSON, resource_version: str | None) -> JSON:
    metadata: JSON = {"name": name, "namespace": namespace}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version  # optimistic locking
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
            "spec": spec}


def read_lease(api: Kube, namespace: str, name: str, timeout: float) -> JSON | None:
    try:
        response: Any = api.coordination.read_namespaced_lease(
            name, namespace, _preload_content=False, _request_timeout=timeout)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    lease: JSON = json.loads(response.data)
    return lease


def write_lease(api: Kube, namespace: str, name: str, spec: JSON, resource_version: str | None,
                timeout: float) -> JSON:
    """Creates the Lease (no resource version) or replaces the version we read; raises
    Conflict when another replica wrote it first."""
    body: Any = _lease_body(namespace, name, spec, resource_version)  # plain JSON, as Jobs
    response: Any
    try:
        if resource_version is None:
            response = api.coordination.create_namespaced_lease(
                namespace, body, _preload_content=False, _request_timeout=timeout)
        else:
            response = api.coordination.replace_namespaced_lease(
                name, namespace, body, _preload_content=False, _request_timeout=timeout)
    except ApiException as exc:
        if exc.status == 409:
            raise Conflict(f"Lease {namespace}/{name} was written by another replica") from None
        raise
    lease: JSON = json.loads(response.data)
    return lease
