"""The values of hidden inputs, for running a node and for its VALIDATE_INPUTS and IS_CHANGED calls.

The engine fills in UNIQUE_ID, PROMPT, DYNPROMPT, EXTRA_PNGINFO and the two account fields (from `extra_data`); any
other hidden input gets the value the prompt gives it, and is left out when the prompt gives none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.dynprompt import DynamicPrompt
from engine.spec import HIDDEN_DYNPROMPT, HIDDEN_EXTRA_PNGINFO, HIDDEN_PROMPT, HIDDEN_UNIQUE_ID, NodeSpec
from engine.workflow import Link, Workflow

HIDDEN_AUTH_TOKEN = "AUTH_TOKEN_COMFY_ORG"
HIDDEN_API_KEY = "API_KEY_COMFY_ORG"
_EXTRA_DATA_KEYS = {
    HIDDEN_EXTRA_PNGINFO: "extra_pnginfo",
    HIDDEN_AUTH_TOKEN: "auth_token_comfy_org",
    HIDDEN_API_KEY: "api_key_comfy_org",
}

ABSENT: Any = object()


class HiddenValues:
    """One run's (or one validation's) hidden values; PROMPT and DYNPROMPT are built on first use."""

    def __init__(self, workflow: Workflow, extra_data: Mapping[str, Any], dynprompt: DynamicPrompt | None = None):
        self.workflow = workflow
        self.extra_data = extra_data
        self._dynprompt = dynprompt
        self._prompt: dict[str, Any] | None = None

    @property
    def prompt(self) -> dict[str, Any]:
        if self._prompt is None:
            self._prompt = self.workflow.to_api()
        return self._prompt

    @property
    def dynprompt(self) -> DynamicPrompt:
        if self._dynprompt is None:
            self._dynprompt = DynamicPrompt(self.workflow, dict(self.workflow.nodes))
        return self._dynprompt

    def value(self, node_id: str, name: str, kind: str, given: Mapping[str, Any]) -> Any:
        """The value of hidden input `name` (of kind `kind`) of a node whose prompt inputs are `given`; ABSENT when
        the node is to be called without it."""
        if kind == HIDDEN_UNIQUE_ID:
            return node_id
        if kind == HIDDEN_PROMPT:
            return self.prompt
        if kind == HIDDEN_DYNPROMPT:
            return self.dynprompt
        key = _EXTRA_DATA_KEYS.get(kind)
        if key is not None:
            return self.extra_data.get(key)
        return given.get(name, ABSENT)


def fingerprint_args(node_id: str, spec: NodeSpec, inputs: Mapping[str, Any], hidden: HiddenValues) -> dict[str, Any]:
    """IS_CHANGED's keyword arguments: the declared literal inputs, every linked input as None, the hidden values.
    The executor and the scale-out scheduler both sign nodes with these, so their cache keys agree."""
    declared = {i.name for i in spec.inputs}
    args = {k: None if type(v) is Link else v for k, v in inputs.items() if type(v) is Link or k in declared}
    for inp in spec.inputs:
        if inp.kind == "hidden":
            value = hidden.value(node_id, inp.name, inp.hidden or inp.type, inputs)
            if value is not ABSENT:
                args[inp.name] = value
    return args
