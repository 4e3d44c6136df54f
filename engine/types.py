"""Socket types and the rule for which output may feed which input."""

from __future__ import annotations

ANY = "*"
INT = "INT"
FLOAT = "FLOAT"
STRING = "STRING"
BOOLEAN = "BOOLEAN"
COMBO = "COMBO"

WIDGET_TYPES = frozenset({INT, FLOAT, STRING, BOOLEAN, COMBO})


def split_union(type_name: str) -> frozenset[str]:
    """`"A,B"` is a union of A and B; whitespace around the names is ignored."""
    return frozenset(part.strip() for part in type_name.split(",") if part.strip())


def types_compatible(output_type: str, input_type: str) -> bool:
    """True when an output of `output_type` may be linked to an input of `input_type`.

    `*` on either side accepts anything; unions are compatible when they share a member. A combo input
    (type COMBO) takes COMBO or STRING outputs, since a combo's value is one of its strings.
    """
    if output_type == input_type or ANY in (output_type, input_type):
        return True
    outs, ins = split_union(output_type), split_union(input_type)
    if ANY in outs or ANY in ins or outs & ins:
        return True
    return COMBO in ins and bool(outs & {COMBO, STRING})
