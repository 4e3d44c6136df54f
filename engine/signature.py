"""Merkle signatures of nodes (DESIGN.md section 4): equal signatures mean equal outputs, whatever the node ids."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Mapping
from hashlib import blake2b
from typing import Any

from engine.hidden import HiddenValues, fingerprint_args
from engine.spec import HIDDEN_UNIQUE_ID, NodeSpec
from engine.workflow import Link, Workflow

Signature = bytes
# (node id, spec, the node's inputs) -> the keyword arguments of its fingerprint (IS_CHANGED) call
FingerprintArgs = Callable[[str, NodeSpec, Mapping[str, Any]], dict[str, Any]]


def _standalone_args(workflow: Workflow) -> FingerprintArgs:
    """Fingerprint arguments outside a run (the scale-out scheduler): hidden values from the workflow alone."""
    hidden = HiddenValues(workflow, {})

    def args(node_id: str, spec: NodeSpec, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return fingerprint_args(node_id, spec, inputs, hidden)

    return args


class Signer:
    """Signatures of one run's nodes, computed on demand and kept for the run.

    A signature hashes the class type, the implementation version, the literal inputs, for each link the upstream
    signature and output index, the node's fingerprint (IS_CHANGED or a native fingerprint; NaN or an exception
    means "always changed") and, for NOT_IDEMPOTENT nodes or nodes that read their own UNIQUE_ID, the node id.
    """

    __slots__ = ("_binds_id", "_fingerprint_args", "_fresh", "_specs", "sigs", "volatile", "workflow")

    def __init__(
        self, workflow: Workflow, specs: Mapping[str, NodeSpec], fingerprint_args: FingerprintArgs | None = None
    ) -> None:
        self.workflow = workflow
        self._specs = specs
        self._fingerprint_args = fingerprint_args or _standalone_args(workflow)
        self.sigs: dict[str, Signature] = {}
        self.volatile: set[str] = set()  # nodes whose fingerprint says "always changed"
        self._binds_id: dict[str, bool] = {}
        salt = os.urandom(8).hex()
        counter = itertools.count()
        self._fresh: Callable[[], str] = lambda: f"{salt}:{next(counter)}"

    def __call__(self, node_id: str) -> Signature:
        sig = self.sigs.get(node_id)
        return sig if sig is not None else self.sign_all((node_id,))[node_id]

    def sign_all(self, node_ids: Iterable[str]) -> dict[str, Signature]:
        """Sign the nodes and everything upstream of them (post-order, iterative: deep chains are fine)."""
        nodes, sigs = self.workflow.nodes, self.sigs
        for root in node_ids:
            if root in sigs:
                continue
            stack = [root]
            while stack:
                node_id = stack[-1]
                if node_id in sigs:
                    stack.pop()
                    continue
                inputs = nodes[node_id].inputs
                missing = [
                    v.node for v in inputs.values() if type(v) is Link and v.node not in sigs and v.node in nodes
                ]
                if missing:
                    if len(stack) > len(nodes) + 1:
                        raise ValueError(f"dependency cycle through node {node_id}")
                    stack.extend(missing)
                    continue
                stack.pop()
                sigs[node_id] = self._sign(node_id, inputs)
        return sigs

    def _sign(self, node_id: str, inputs: dict[str, Any]) -> Signature:
        node = self.workflow.nodes[node_id]
        spec = self._specs[node.class_type]
        sigs = self.sigs
        parts: list[Any] = [spec.class_type, spec.version]
        for name in sorted(inputs):
            value = inputs[name]
            if type(value) is Link:
                parts.append((name, sigs.get(value.node, value.node), value.output))
            else:
                parts.append((name, value))
        if spec.fingerprint is not None:
            args = self._fingerprint_args(node_id, spec, inputs)
            parts.append(("\x00fp", self._fingerprint(node_id, spec, args)))
        binds = self._binds_id.get(spec.class_type)
        if binds is None:
            binds = spec.not_idempotent or any(i.kind == "hidden" and i.hidden == HIDDEN_UNIQUE_ID for i in spec.inputs)
            self._binds_id[spec.class_type] = binds
        if binds:
            parts.append(("\x00id", node_id))
        return blake2b(repr(parts).encode(), digest_size=16).digest()

    def _fingerprint(self, node_id: str, spec: NodeSpec, args: dict[str, Any]) -> Any:
        try:
            value = spec.fingerprint(args)  # type: ignore[misc]
        except Exception:
            value = float("nan")
        if value != value:  # NaN: always changed
            self.volatile.add(node_id)
            return self._fresh()
        return value
