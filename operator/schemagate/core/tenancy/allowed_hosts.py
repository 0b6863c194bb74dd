"""The database hosts each namespace's URLs may name (`schemagate run --allowed-hosts-file`).

The operator connects from its own pod, which may reach databases no tenant's pod can. A
namespace given a list here has every host of its URLs checked before any connection is
attempted; a host outside it makes that schema's InvalidSpec.

A pattern is one of:

- `*`: any host;
- an exact host name (`db.team-a.svc.cluster.local`), compared without case and without
  a trailing dot;
- `*.suffix` (`*.team-a.svc.cluster.local`): any name that ends with `.suffix`, the
  suffix itself excluded;
- an IPv4 or IPv6 network (`10.20.0.0/16`, `fd00::/8`) or address (`10.20.0.5`).

Names are matched as written, never resolved: a name allowed may resolve to any address
(whoever controls its DNS chooses). A network matches only a host written as an IP
address; a name never matches a network, so an address range cannot be reached through a
name, but neither can a name be allowed by the addresses it resolves to.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import yaml

from schemagate.core.check.verdict import names

#: The key of the patterns for every namespace that has none of its own.
EVERY_NAMESPACE = "*"
#: The longest host name DNS allows; a longer host matches nothing.
LONGEST_NAME = 253
#: Patterns in the whole file: the file is the platform team's, but the operator matches
#: every check against it, so its size is chosen, not open.
MOST_PATTERNS = 10_000
#: Patterns quoted in a message; the count says the rest.
QUOTED = 5

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class InvalidAllowedHosts(ValueError):
    """The allowed-hosts file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class HostPatterns:
    """One namespace's allowed hosts."""

    written: tuple[str, ...] = ()
    any_host: bool = False
    exact: frozenset[str] = frozenset()
    #: `*.suffix` patterns, kept as `.suffix`.
    suffixes: frozenset[str] = frozenset()
    #: Networks by (IP version, prefix length), each as its address's leading bits: an
    #: address is looked up once per prefix length, however many networks are listed.
    networks: Mapping[tuple[int, int], frozenset[int]] = field(default_factory=dict)

    def allows(self, host: str | None) -> bool:
        """Whether `host`, as the URL writes it (None: the local socket), is allowed."""
        if self.any_host:
            return True
        if not host or len(host) > LONGEST_NAME + 2:  # + 2: an IPv6 address's brackets
            return False
        name = host.strip("[]").rstrip(".").lower()
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return name in self.exact or any(
                name[i:] in self.suffixes for i, c in enumerate(name) if c == "." and i)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # what the connection reaches
        return any(int(address) >> (address.max_prefixlen - length) in prefixes
                   for (version, length), prefixes in self.networks.items()
                   if version == address.version)

    def describe(self) -> str:
        return names(self.written, limit=QUOTED) if self.written else "none"


@dataclass(frozen=True)
class AllowedHosts:
    """Patterns by namespace; `*` for the namespaces without their own."""

    namespaces: Mapping[str, HostPatterns] = field(default_factory=dict)

    def for_namespace(self, namespace: str) -> HostPatterns | None:
        """The namespace's patterns, the default's, or None: any host."""
        return self.namespaces.get(namespace, self.namespaces.get(EVERY_NAMESPACE))


#: The largest allowed-hosts file read: far more than MOST_PATTERNS need.
LARGEST_FILE = 1024 * 1024
# libyaml's C loader where PyYAML was built with it.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str, source: str = "the allowed-hosts file") -> AllowedHosts:
    """The allowlist from the file's text (YAML or JSON). Raises `InvalidAllowedHosts`."""
    if len(text) > LARGEST_FILE:
        raise InvalidAllowedHosts(f"{source}: larger than {LARGEST_FILE:,} characters")
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise InvalidAllowedHosts(f"{source}: not YAML: {str(exc)[:200]}") from None
    return parse(document, source)


def parse(document: object, source: str = "the allowed-hosts file") -> AllowedHosts:
    """The allowlist from the file's content (YAML or JSON already loaded): a mapping of
    namespace (or `*`) to a list of patterns. Raises `InvalidAllowedHosts`."""
    if document is None:
        return AllowedHosts()
    if not isinstance(document, Mapping):
        raise InvalidAllowedHosts(f"{source}: expected a mapping of namespace to a list of "
                                  "host patterns")
    by_namespace: dict[str, HostPatterns] = {}
    total = 0
    for namespace, patterns in document.items():
        if not isinstance(namespace, str) or not namespace:
            raise InvalidAllowedHosts(f"{source}: {namespace!r} is not a namespace")
        if not isinstance(patterns, list):
            raise InvalidAllowedHosts(f"{source}: {namespace}: expected a list of host "
                                      "patterns")
        total += len(patterns)
        if total > MOST_PATTERNS:
            raise InvalidAllowedHosts(f"{source}: more than {MOST_PATTERNS:,} patterns")
        by_namespace[namespace] = host_patterns(patterns, f"{source}: {namespace}")
    return AllowedHosts(by_namespace)


def host_patterns(patterns: Iterable[object], where: str = "") -> HostPatterns:
    """One namespace's patterns. Raises `InvalidAllowedHosts` naming the first bad one."""
    written: list[str] = []
    exact: set[str] = set()
    suffixes: set[str] = set()
    networks: dict[tuple[int, int], set[int]] = {}
    any_host = False
    for pattern in patterns:
        if not isinstance(pattern, str) or not 0 < len(pattern) <= LONGEST_NAME + 2:
            raise InvalidAllowedHosts(f"{where}: {str(pattern)[:80]!r} is not a host pattern")
        written.append(pattern)
        text = pattern.strip().lower()
        if text == "*":
            any_host = True
        elif text.startswith("*."):
            suffixes.add(_name(text[1:].rstrip("."), pattern, where))
        elif (network := _network(text, where)) is not None:
            networks.setdefault((network.version, network.prefixlen), set()).add(
                int(network.network_address) >> (network.max_prefixlen - network.prefixlen))
        else:
            exact.add(_name(text.rstrip("."), pattern, where))
    return HostPatterns(tuple(written), any_host, frozenset(exact), frozenset(suffixes),
                        {length: frozenset(prefixes) for length, prefixes in networks.items()})


def _network(text: str, where: str) -> Network | None:
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=True)
    except ValueError as exc:
        if "/" in text or ":" in text:  # meant as a network: say why it is not one
            raise InvalidAllowedHosts(f"{where}: {text!r}: {exc}") from None
        return None


_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def _name(text: str, pattern: str, where: str) -> str:
    """`text` when it is a host name (or a `.suffix`), else InvalidAllowedHosts."""
    body = text.removeprefix(".")
    if not body or not set(body) <= _NAME_CHARACTERS or "" in body.split("."):
        raise InvalidAllowedHosts(f"{where}: {pattern!r} is not a host name, *.suffix, "
                                  "network or *")
    return text


def refusal(host: str | None, namespace: str, patterns: HostPatterns, secret: str,
            key: str) -> str:
    """The InvalidSpec message for a host outside the namespace's allowed hosts."""
    shown = "the local socket" if not host else host[:LONGEST_NAME + 2]
    return (f"the database URL in Secret {secret} key {key} names host {shown}, which is "
            f"not among the database hosts allowed for namespace {namespace} "
            f"({patterns.describe()}, the operator's --allowed-hosts-file): no connection "
            "was attempted. Use an allowed host, or ask whoever runs the operator to allow "
            "this one")
