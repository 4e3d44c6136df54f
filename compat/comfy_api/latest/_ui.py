"""`comfy_api.latest._ui`: the same helpers as `comfy_api.latest.ui`, under the private name some packs import."""

from comfy_api.latest.ui import *  # noqa: F403
