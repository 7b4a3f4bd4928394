"""SimGap: a sim-to-real quality gate for synthetic point clouds (DoGSS-PCL on NVIDIA Warp).

Outside Kit this package is plain Python (``simgap`` CLI, ``simgap_ext.metrics`` ...). Inside Kit the
extension class is exposed here so that Kit's ``[[python.module]]`` loader finds it; importing it needs
``omni.ext``, which only exists inside Kit.
"""

from __future__ import annotations

__version__ = "0.1.0"

try:  # pragma: no cover - only true inside Kit
    import omni.ext  # noqa: F401
except ImportError:  # plain Python: no Kit entry point
    pass
else:  # pragma: no cover
    from .extension import *  # noqa: F401,F403
