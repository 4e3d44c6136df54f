"""`comfy_api.latest._io`: the same module as `comfy_api.latest.io`, under the private name some packs import."""

from comfy_api.latest.io import *  # noqa: F403
