"""Cache-affinity scheduling: what a job needs, and which idle worker already holds most of it.

The server signs the job's nodes with the same `engine.signature.Signer` the workers' executors use, so a signature
a worker reports as cached is exactly a node output the job would otherwise compute again. Loaded models weigh far
more than anything else: reloading a checkpoint costs seconds and gigabytes, recomputing a latent costs little.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.registry import NodeRegistry
from engine.signature import Signature, Signer
from engine.workflow import Workflow

# Output types whose values are loaded or patched models, and text encodings; anything else weighs 1.
HEAVY_TYPES: Mapping[str, int] = {
    "MODEL": 100,
    "CLIP": 60,
    "VAE": 30,
    "CONTROL_NET": 30,
    "CLIP_VISION": 30,
    "UPSCALE_MODEL": 30,
    "CONDITIONING": 10,
}


@dataclass(frozen=True, slots=True)
class Need:
    """One node output a job needs: its weight, and a short label for `/system_stats`."""

    weight: int
    label: str


def job_needs(workflow: Workflow, registry: NodeRegistry) -> dict[Signature, Need]:
    """Signature -> Need for every node of the workflow whose type the registry knows.

    A node whose signature cannot be computed (an unknown type, a broken fingerprint) is simply left out: the job
    still runs, only its placement ignores that node.
    """
    specs = {n.class_type: registry.get(n.class_type) for n in workflow.nodes.values()}
    known = {ct: spec for ct, spec in specs.items() if spec is not None}
    signer = Signer(workflow, known)
    needs: dict[Signature, Need] = {}
    for node_id, node in workflow.nodes.items():
        spec = known.get(node.class_type)
        if spec is None:
            continue
        try:
            sig = signer(node_id)
        except (ValueError, KeyError):
            continue
        if node_id in signer.volatile:
            continue
        weight = max((HEAVY_TYPES.get(out.type, 1) for out in spec.outputs), default=1)
        needs[sig] = Need(weight, _label(node.class_type, node.inputs))
    return needs


def _label(class_type: str, inputs: Mapping[str, object]) -> str:
    literals = [f"{k}={v}" for k, v in sorted(inputs.items()) if isinstance(v, str | int | float) and len(str(v)) < 60]
    return f"{class_type}({', '.join(literals[:2])})"


def affinity_score(needs: Mapping[Signature, Need], held: Sequence[Signature] | set[Signature]) -> int:
    """The weight of what a worker holds of a job's needs."""
    return sum(need.weight for sig, need in needs.items() if sig in held)


def pick(
    needs: Mapping[Signature, Need],
    idle: Sequence[tuple[int, set[Signature]]],
    *,
    affinity: bool = True,
) -> int:
    """Among idle workers (index, held signatures; listed longest-idle first), the index of the one holding the
    heaviest share of the job's needs; ties (and `affinity=False`) go to the longest idle, which spreads load."""
    if not idle:
        raise ValueError("no idle worker to pick from")
    if not affinity:
        return idle[0][0]
    best, best_score = idle[0][0], -1
    for index, held in idle:
        score = affinity_score(needs, held)
        if score > best_score:
            best, best_score = index, score
    return best
