"""An error of the API server is one line in the log: its status and its own message,
never the client's dump of headers and body over many lines."""

import json

import pytest
from kubernetes.client.exceptions import ApiException

from schemagate import kube


def test_an_api_error_is_one_line_with_the_servers_message() -> None:
    body = json.dumps({"kind": "Status", "message": 'Job.batch "x" is invalid:\n'
                       "metadata.labels: Invalid value: must be no more than 63 characters"})
    error = ApiException(status=422, reason="Unprocessable Entity", body=body)
    assert "\n" in str(error)  # what the client prints

    line = kube.describe(error)
    assert "\n" not in line
    assert line.startswith("the API server answered 422 Unprocessable Entity: Job.batch")
    assert "must be no more than 63 characters" in line
    assert "HTTP response headers" not in line


def test_other_errors_are_one_line_too() -> None:
    assert kube.describe(TimeoutError("read timed out\n(after 15 s)")) == \
        "read timed out (after 15 s)"
    assert kube.describe(ApiException(status=503, reason="Service Unavailable")) == \
        "the API server answered 503 Service Unavailable"


class Pods:
    """The client's CoreV1Api as far as a pod patch goes: it answers with `error`."""

    def __init__(self, error: ApiException) -> None:
        self.error = error

    def patch_namespaced_pod(self, *args: object, **kwargs: object) -> None:
        raise self.error


def releasing(error: ApiException) -> int | None:
    api = object.__new__(kube.Kube)
    api.core = Pods(error)  # type: ignore[assignment]
    return api.release_start_gate("ns", "p", "uid-1", "schemagate.io/s")


def test_releasing_the_start_gate_of_another_pod_of_that_name_changes_nothing() -> None:
    """The uid the patch carries is not the pod's: the API server calls it a change of
    the immutable metadata.uid."""
    body = json.dumps({"kind": "Status", "code": 422, "reason": "Invalid", "details": {
        "causes": [{"reason": "FieldValueInvalid", "field": "metadata.uid"}]}})
    assert releasing(ApiException(status=422, reason="Unprocessable Entity", body=body)) is None
    assert releasing(ApiException(status=404, reason="Not Found")) is None
    refused = json.dumps({"kind": "Status", "code": 422, "reason": "Invalid", "details": {
        "causes": [{"field": "spec.containers"}]}})
    for other in (ApiException(status=422, reason="Unprocessable Entity", body=refused),
                  ApiException(status=403, reason="Forbidden")):
        with pytest.raises(ApiException) as raised:
            releasing(other)
        assert raised.value is other
