"""Certificate policy processing (RFC 5280 6.1.3-6.1.5) with APIM's fixed inputs.

APIM exposes no policy inputs, so the user-initial-policy-set is anyPolicy and the initial
explicit-policy, policy-mapping-inhibit and any-policy-inhibit flags are off. What remains are the
constraints CAs put in their own certificates: requireExplicitPolicy, inhibitPolicyMapping,
inhibitAnyPolicy and policy mappings. A path whose valid policy tree ends empty while an explicit
policy is required is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.x509.oid import CertificatePoliciesOID

from certgate.certs.certinfo import CertInfo

ANY_POLICY = CertificatePoliciesOID.ANY_POLICY.dotted_string


class _Node:
    __slots__ = ("children", "expected", "parent", "policy")

    def __init__(self, policy: str, expected: set[str], parent: _Node | None):
        self.policy = policy
        self.expected = expected
        self.parent = parent
        self.children: list[_Node] = []
        if parent is not None:
            parent.children.append(self)


def _level(root: _Node, depth: int) -> list[_Node]:
    nodes = [root]
    for _ in range(depth):
        nodes = [c for n in nodes for c in n.children]
    return nodes


def _prune(root: _Node, depth: int) -> _Node | None:
    """Removes childless nodes above `depth`; None when the whole tree goes."""
    for level in range(depth - 1, -1, -1):
        for node in _level(root, level):
            if not node.children and node.parent is not None:
                node.parent.children.remove(node)
    return root if root.children or depth == 0 else None


def _policies_step(
    tree: _Node | None, cert: CertInfo, depth: int, any_allowed: bool
) -> _Node | None:
    """6.1.3 (d)/(e): grow the tree by one level from `cert`'s certificatePolicies."""
    if tree is None or cert.policies is None:
        return None
    parents = _level(tree, depth - 1)
    for policy in cert.policies:
        if policy == ANY_POLICY:
            continue
        matched = [p for p in parents if policy in p.expected]
        if not matched:
            matched = [p for p in parents if p.policy == ANY_POLICY]
        for parent in matched:
            _Node(policy, {policy}, parent)
    if ANY_POLICY in cert.policies and any_allowed:
        for parent in parents:
            present = {c.policy for c in parent.children}
            for policy in sorted(parent.expected - present):
                _Node(policy, {policy}, parent)
    return _prune(tree, depth)


def _mapping_step(tree: _Node | None, cert: CertInfo, depth: int, mapping: int) -> _Node | None:
    """6.1.4 (b): apply policyMappings of an intermediate to the tree's newest level."""
    if tree is None or not cert.policy_mappings:
        return tree
    mapped: dict[str, set[str]] = {}
    for issuer_policy, subject_policy in cert.policy_mappings:
        mapped.setdefault(issuer_policy, set()).add(subject_policy)
    for issuer_policy, subjects in mapped.items():
        nodes = [n for n in _level(tree, depth) if n.policy == issuer_policy]
        if mapping > 0:
            for node in nodes:
                node.expected = set(subjects)
            if not nodes:
                for any_node in [n for n in _level(tree, depth) if n.policy == ANY_POLICY]:
                    _Node(issuer_policy, set(subjects), any_node.parent)
        else:
            for node in nodes:
                node.parent.children.remove(node)
            tree = _prune(tree, depth)
            if tree is None:
                return None
    return tree


def policy_problem(path: Sequence[CertInfo]) -> str:
    """'' when `path` (leaf first, anchor last) has a valid policy outcome, else why not."""
    certs = list(reversed(path[:-1]))
    n = len(certs)
    if not any(c.policies or c.policy_constraints or c.inhibit_any is not None for c in certs):
        return ""
    tree: _Node | None = _Node(ANY_POLICY, {ANY_POLICY}, None)
    explicit = mapping = inhibit_any = n + 1
    for i, cert in enumerate(certs, start=1):
        last = i == n
        any_allowed = inhibit_any > 0 or (not last and cert.self_issued)
        tree = _policies_step(tree, cert, i, any_allowed)
        if explicit <= 0 and tree is None:
            return "no valid certificate policy for the path (policy constraints)"
        if last:
            break
        if any(ANY_POLICY in pair for pair in cert.policy_mappings):
            return "policy mapping to or from anyPolicy"
        tree = _mapping_step(tree, cert, i, mapping)
        if not cert.self_issued:
            explicit, mapping, inhibit_any = (
                max(v - 1, 0) for v in (explicit, mapping, inhibit_any)
            )
        constraints = cert.policy_constraints
        if constraints is not None:
            if constraints.require_explicit_policy is not None:
                explicit = min(explicit, constraints.require_explicit_policy)
            if constraints.inhibit_policy_mapping is not None:
                mapping = min(mapping, constraints.inhibit_policy_mapping)
        if cert.inhibit_any is not None:
            inhibit_any = min(inhibit_any, cert.inhibit_any)
    leaf = certs[-1]
    explicit = max(explicit - 1, 0)
    if leaf.policy_constraints is not None and leaf.policy_constraints.require_explicit_policy == 0:
        explicit = 0
    if explicit <= 0 and tree is None:
        return "no valid certificate policy for the path (policy constraints)"
    return ""
