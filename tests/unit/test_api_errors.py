"""An error of the API server is one line in the log: its status and its own message,
never the client's dump of headers and body over many lines."""

import json

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
