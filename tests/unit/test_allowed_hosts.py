"""A namespace given allowed database hosts (`schemagate run --allowed-hosts-file`) cannot
have the operator connect anywhere else: a URL naming another host is its schema's
InvalidSpec, with no connection attempted."""

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from schemagate import cli
from schemagate.core.check.verdict import Verdict
from schemagate.core.tenancy.allowed_hosts import (
    AllowedHosts,
    InvalidAllowedHosts,
    host_patterns,
    load,
)
from schemagate.core.wire.reasons import Reason
from schemagate.postgres import catalog, connect
from schemagate.reconcile.batch import Batches
from schemagate.reconcile.loop import reconcile
from tests.support.fake_kube import FakeKube

FILE = """
team-a: [db.team-a.svc.cluster.local, "*.rds.amazonaws.com", 10.20.0.0/16, "fd00:20::/32"]
team-b: []
trusted: ["*"]
"*": ["*.shared.internal"]
"""


@pytest.mark.parametrize(("host", "allowed"), [
    ("db.team-a.svc.cluster.local", True),
    ("DB.Team-A.svc.cluster.local.", True),  # without case, without the trailing dot
    ("db.team-b.svc.cluster.local", False),
    ("orders.abc.eu-west-1.rds.amazonaws.com", True),
    ("rds.amazonaws.com", False),  # *.suffix: the suffix itself is not allowed
    ("evilrds.amazonaws.com.attacker.example", False),
    ("notrds.amazonaws.com", False),
    ("10.20.3.4", True),
    ("10.21.0.1", False),
    ("::ffff:10.20.3.4", True),  # an IPv4-mapped address reaches the IPv4 address
    ("[fd00:20::5]", True),
    ("fd00:21::5", False),
    ("169.254.169.254", False),
    ("127.0.0.1", False),
    (None, False),  # the local socket
    ("/var/run/postgresql", False),
    ("x" * 100_000, False),
])
def test_a_host_is_allowed_only_by_a_pattern_it_matches_as_written(host: str | None,
                                                                  allowed: bool) -> None:
    patterns = load(FILE).for_namespace("team-a")
    assert patterns is not None and patterns.allows(host) is allowed


def test_a_network_never_allows_a_name_and_a_name_never_allows_an_address() -> None:
    by_network = host_patterns(["10.0.0.0/8"])
    assert not by_network.allows("db.internal")  # whatever it resolves to: never resolved
    by_name = host_patterns(["10.0.0.5.nip.io", "*.internal"])
    assert not by_name.allows("10.0.0.5")
    assert by_name.allows("10.0.0.5.nip.io")  # a name, allowed by name, resolved anywhere


def test_a_namespace_of_its_own_replaces_the_default_and_unlisted_ones_take_it() -> None:
    allowed = load(FILE)
    team_a, team_b, other = (allowed.for_namespace(n) for n in ("team-a", "team-b", "other"))
    assert team_a is not None and not team_a.allows("pg.shared.internal")
    assert team_b is not None and not team_b.allows("pg.shared.internal")  # [] : none
    assert other is not None and other.allows("pg.shared.internal")
    trusted = allowed.for_namespace("trusted")
    assert trusted is not None and trusted.allows("127.0.0.1")
    assert load("team-a: [db]").for_namespace("other") is None  # no default: any host
    assert AllowedHosts().for_namespace("team-a") is None


@pytest.mark.parametrize(("text", "says"), [
    ("[a, b]", "a mapping of namespace"),
    ("team-a: db", "a list of host patterns"),
    ("team-a: [10.20.0.1/16]", "host bits set"),
    ("team-a: ['db/x']", "db/x"),
    ("team-a: ['a..b']", "not a host name"),
    ("team-a: ['*.']", "not a host name"),
    ("team-a: ['db;drop']", "not a host name"),
    ("team-a: [{a: 1}]", "not a host pattern"),
    ("team-a: [", "not YAML"),
])
def test_a_file_that_cannot_be_used_is_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(InvalidAllowedHosts, match="the allowed-hosts file") as caught:
        load(text)
    assert says in str(caught.value)


def test_a_large_file_is_read_in_linear_time_and_a_larger_one_refused() -> None:
    lines = "\n".join(f"ns{i}: [db{i}.example, '*.s{i}.example', 10.{i % 256}.0.0/16]"
                      for i in range(3_000))
    started = time.perf_counter()
    allowed = load(lines)
    patterns = allowed.for_namespace("ns2999")
    assert patterns is not None and patterns.allows("a.b.s2999.example")
    assert time.perf_counter() - started < 2
    with pytest.raises(InvalidAllowedHosts, match="more than 10,000 patterns"):
        load(lines + "\nmore: [" + ", ".join(f"h{i}" for i in range(1_100)) + "]")
    with pytest.raises(InvalidAllowedHosts, match="larger than"):
        load("a: [" + "b" * 2_000_000 + "]")


@pytest.mark.parametrize(("url", "hosts"), [
    ("postgresql://u:p@a.example/db", ["a.example"]),
    ("postgresql://u:p@a.example/db?host=b.example", ["b.example"]),  # libpq takes this one
    ("postgresql://u:p@a.example,b.example:5433/db", ["a.example", "b.example"]),
    ("postgresql://u:p@a.example/db?hostaddr=127.0.0.1", ["127.0.0.1"]),
    ("postgresql://u:p@/db?host=a,b&hostaddr=1.2.3.4,", ["1.2.3.4", "b"]),
    ("postgresql://u:p@/db", [None]),
])
def test_the_hosts_of_a_url_are_those_libpq_connects_to(url: str, hosts: list[str]) -> None:
    assert connect.url_hosts(url) == hosts


class Server:
    """Stands for `catalog.verify_many`: records each connection attempt."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, url: str, asked: Sequence[catalog.Asked], timeout: float
                 ) -> list[Verdict]:
        self.urls.append(url)
        return [Verdict(verified=True, reason=Reason.VERIFIED, message="ok") for _ in asked]


def check(url: str, namespace: str = "team-a") -> tuple[Any, Server]:
    """One pass of a schema whose Secret holds `url`: what its status says (reason and
    message), and the connections attempted."""
    server, kube = Server(), FakeKube()
    body = kube.add_schema(namespace, "s", {"database": {"urlSecretRef": {
        "name": "db", "key": "url"}}, "tables": ["t"]})
    kube.add_secret(namespace, "db", url=url)
    ctx = kube.context(batches=Batches(run=server), allowed_hosts=load(FILE))
    asyncio.run(reconcile(body, ctx, logging.getLogger("test")))
    ready = kube.status(namespace, "s")["conditions"][0]
    return SimpleNamespace(reason=Reason(ready["reason"]), message=ready["message"]), server


@pytest.mark.parametrize(("url", "named"), [
    ("postgresql://app:guess@10.0.0.5/app", "10.0.0.5"),
    ("postgresql://app:guess@db.team-a.svc.cluster.local/app?hostaddr=10.9.9.9", "10.9.9.9"),
    ("postgresql://app:guess@db.team-a.svc.cluster.local,admin.internal/app",
     "admin.internal"),
])
def test_a_url_naming_a_host_outside_is_an_invalid_spec_and_nothing_connects(
        url: str, named: str) -> None:
    outcome, server = check(url)
    assert outcome.reason is Reason.INVALID_SPEC
    assert f"names host {named}, which is not among the database hosts allowed for " \
           "namespace team-a (db.team-a.svc.cluster.local, *.rds.amazonaws.com, " \
           "10.20.0.0/16, fd00:20::/32, the operator's --allowed-hosts-file)" in outcome.message
    assert "guess" not in outcome.message
    assert server.urls == []


def test_a_url_naming_allowed_hosts_is_checked() -> None:
    outcome, server = check("postgresql://app:pw@db.team-a.svc.cluster.local,10.20.0.7/app")
    assert outcome.reason is Reason.VERIFIED
    assert len(server.urls) == 1
    outcome, server = check("postgresql://app:pw@10.0.0.5/app", namespace="unlisted-team")
    assert outcome.reason is Reason.INVALID_SPEC  # the `*` default: *.shared.internal only


def test_run_refuses_an_allowed_hosts_file_it_cannot_use(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    bad = tmp_path / "allowed.yaml"
    bad.write_text("team-a: [10.0.0.1/8]\n")
    assert cli.main(["run", "-A", "--allowed-hosts-file", str(bad)]) == 2
    assert "has host bits set" in capsys.readouterr().err
    assert cli.main(["run", "-A", "--allowed-hosts-file", str(tmp_path / "none")]) == 2
    assert "cannot read --allowed-hosts-file" in capsys.readouterr().err


def test_a_name_that_hides_a_loopback_hostaddr_is_refused_as_the_operator_itself() -> None:
    outcome, server = check("postgresql://app:pw@db.example/app?hostaddr=127.0.0.1",
                            namespace="trusted")  # `*`: any host, so only loopback stops it
    assert outcome.reason is Reason.INVALID_SPEC
    assert "127.0.0.1, a loopback address" in outcome.message
    assert server.urls == []


def test_an_address_is_matched_once_per_prefix_length_however_many_networks() -> None:
    patterns = host_patterns([f"10.{i // 256 % 256}.{i % 256}.0/24" for i in range(10_000)]
                             + ["fd00::/8", "192.168.7.7"])
    assert patterns.allows("10.39.15.200") and patterns.allows("fdab::1")
    assert patterns.allows("192.168.7.7") and not patterns.allows("192.168.7.8")
    started = time.perf_counter()
    for _ in range(1_000):  # one network after another: 4.5 s
        assert not patterns.allows("172.16.0.1")
    assert time.perf_counter() - started < 0.5
    assert host_patterns(["0.0.0.0/0"]).allows("203.0.113.9")
    assert not host_patterns(["0.0.0.0/0"]).allows("::1")
