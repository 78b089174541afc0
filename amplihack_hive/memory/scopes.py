"""Scopes: who may see a fact.

Every fact has one scope:

- ``hive``: every agent and client of the hive (the default: a hive without scopes works
  as before);
- ``agent:<name>``: one agent's private memory;
- ``group:<name>``: a team of agents declared in the hive's config (``groups``).

**Placement: the scope is part of each posting list's key.** A term's postings in scope
``s`` live on the list :func:`scoped` (s, term), owned by the ring owners of that key; the
corpus list of ``s`` is :func:`corpus_key` (s). The ``hive`` scope's keys are the bare
terms, so a hive without scopes stores and routes exactly as before. A recall that sees
scopes S asks the owners of |S| lists per question term and |S| corpus lists, and adds
them up: N, the total length and each term's df are sums over disjoint sets of facts (a
fact has one scope), so the ranking is exactly that of one agent holding just the facts in
S. Fan-out grows with |S| (what one asker may see: its own scope, its groups, the hive),
never with the number of agents or of groups in the hive.

The alternative, one list per term with the scope on each posting and a filter on the
owners' side, keeps fan-out at one list per term but makes every owner filter (and
count, for df and N) whole lists per request, a cost that grows with what other scopes
hold; and the corpus figures per scope would need a list per scope anyway. Keys also make
enforcement structural: a request for scope S's lists names S's keys, so an owner never
has to decide what to leave out.

**Access** (:class:`Access`): who asks decides which scopes a request may read and write.
The hive token is the admin key (every scope); an agent's credential
(:func:`amplihack_hive.hive.token.agent_credential`) gives that agent its own scope, its
groups and the hive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from amplihack_hive.errors import ForbiddenError, InvalidInputError
from amplihack_hive.names import validate_name

HIVE = "hive"
AGENT_PREFIX = "agent:"
GROUP_PREFIX = "group:"
#: Between a scope and a term in a list's key: no term contains it (terms are words, and
#: the corpus term starts with NUL), nor does a scope (names are letters, digits and -),
#: nor repair's record keys (their separator is 0x1f).
KEY_SEP = "\x1e"
#: How the corpus list's term ends every corpus key (records.CORPUS_TERM).
_CORPUS = "\x00facts"


def check_scope(value: object) -> str:
    """``value`` if it is a scope (``hive``, ``agent:NAME``, ``group:NAME``), else
    InvalidInputError naming the rule."""
    if value == HIVE:
        return HIVE
    if isinstance(value, str):
        for prefix, what in ((AGENT_PREFIX, "agent name"), (GROUP_PREFIX, "group name")):
            if value.startswith(prefix):
                validate_name(value[len(prefix) :], what)
                return value
    raise InvalidInputError(f"invalid scope {value!r}: use 'hive', 'agent:NAME' or 'group:NAME'")


def agent_scope(agent: str) -> str:
    return AGENT_PREFIX + agent


def group_scope(group: str) -> str:
    return GROUP_PREFIX + group


def scoped(scope: str, term: str) -> str:
    """The key of ``term``'s posting list in ``scope`` (the bare term in ``hive``)."""
    return term if scope == HIVE else f"{scope}{KEY_SEP}{term}"


def corpus_key(scope: str) -> str:
    """The key of ``scope``'s corpus list."""
    return scoped(scope, _CORPUS)


def is_corpus_key(key: str) -> bool:
    return key == _CORPUS or key.endswith(KEY_SEP + _CORPUS)


def is_scoped_key(key: str) -> bool:
    """Whether ``key`` is the key of a list outside the hive scope."""
    return KEY_SEP in key


def place(key: str) -> str:
    """The key a posting list is placed by on the ring: every scope's corpus list by the
    hive's (their owners take one corpus posting per fact already, whatever its scope, and
    a recall asks one of them for all its scopes at once: measured in bench_scopes); any
    other list by its own key."""
    return _CORPUS if is_corpus_key(key) else key


def split_key(key: str) -> tuple[str, str]:
    """(scope, term) of a list's key."""
    scope, sep, term = key.partition(KEY_SEP)
    return (scope, term) if sep else (HIVE, key)


def check_groups(groups: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """Groups as the config and agents hold them: group name -> its agents (sorted, each
    name valid)."""
    out: dict[str, tuple[str, ...]] = {}
    for name, members in groups.items():
        validate_name(name, "group name")
        if isinstance(members, str):
            raise InvalidInputError(f"group {name!r}: its agents must be a list of names")
        out[name] = tuple(sorted({validate_name(m, "agent name") for m in members}))
    return dict(sorted(out.items()))


def parse_group_spec(spec: str) -> tuple[str, list[str]]:
    """``NAME=AGENT,AGENT`` (``create --group``, the agents' ``--group``)."""
    name, sep, members = spec.partition("=")
    name = name.strip()
    if not sep:
        raise InvalidInputError(f"expected a group as NAME=AGENT,AGENT..., got {spec!r}")
    validate_name(name, "group name")
    agents = [validate_name(m.strip(), "agent name") for m in members.split(",") if m.strip()]
    return name, agents


@dataclass(frozen=True)
class Access:
    """What a request may read and write. ``agent`` None is the admin (the hive token):
    every scope; else the agent's own scope, its groups and the hive."""

    agent: str | None = None
    groups: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @classmethod
    def admin(cls, groups: Mapping[str, Sequence[str]] | None = None) -> Access:
        return cls(None, dict(groups or {}))

    @classmethod
    def of_agent(cls, agent: str, groups: Mapping[str, Sequence[str]] | None = None) -> Access:
        return cls(validate_name(agent, "agent name"), dict(groups or {}))

    @property
    def is_admin(self) -> bool:
        return self.agent is None

    def member_of(self, agent: str) -> list[str]:
        return sorted(g for g, members in self.groups.items() if agent in members)

    def visible(self) -> tuple[str, ...]:
        """The scopes a recall covers when it names none: for an agent its own, its
        groups' and the hive's; for the admin the hive's (name others to see them)."""
        if self.agent is None:
            return (HIVE,)
        return (
            HIVE,
            agent_scope(self.agent),
            *(group_scope(g) for g in self.member_of(self.agent)),
        )

    def may(self, scope: str) -> bool:
        """Whether this request may read and write ``scope``."""
        if self.agent is None or scope == HIVE:
            return True
        if scope.startswith(AGENT_PREFIX):
            return scope[len(AGENT_PREFIX) :] == self.agent
        if scope.startswith(GROUP_PREFIX):
            return self.agent in self.groups.get(scope[len(GROUP_PREFIX) :], ())
        return False

    def check(self, scope: str) -> str:
        """``scope`` (validated) if this request may use it, else ForbiddenError, which says
        nothing about what the scope holds."""
        scope = check_scope(scope)
        if not self.may(scope):
            raise ForbiddenError(f"agent {self.agent} has no access to scope {scope}")
        if scope.startswith(GROUP_PREFIX) and scope[len(GROUP_PREFIX) :] not in self.groups:
            raise InvalidInputError(
                f"no group {scope[len(GROUP_PREFIX) :]!r} in this hive (declare it with "
                "create --group or add-agent --group)"
            )
        return scope

    def scopes(self, asked: Sequence[str] | None) -> tuple[str, ...]:
        """The scopes a recall covers: ``asked`` (each checked; duplicates once), or
        :meth:`visible` when None."""
        if asked is None:
            return self.visible()
        if isinstance(asked, str):
            asked = [asked]
        if not asked:
            raise InvalidInputError("a recall needs at least one scope")
        out: list[str] = []
        for s in asked:
            s = self.check(s)
            if s not in out:
                out.append(s)
        return tuple(out)

    def widens(self, source: str, target: str) -> bool:
        """Whether ``target`` holds everyone ``source`` does (escalate moves only outward):
        an agent's scope into a group of it or the hive; a group into the hive."""
        if target == HIVE:
            return source != HIVE
        if source.startswith(AGENT_PREFIX) and target.startswith(GROUP_PREFIX):
            members = self.groups.get(target[len(GROUP_PREFIX) :], ())
            return source[len(AGENT_PREFIX) :] in members
        return False
