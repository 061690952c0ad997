"""Hook specifications: the plugin author's reference.

(Stub: the plugin-machinery work fills in the three hooks of DESIGN.md.)
"""

import pluggy

PROJECT_NAME = "reactor_framework"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
