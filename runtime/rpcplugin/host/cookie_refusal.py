"""A host's view of a plugin that refused its magic cookie.

A plugin started with the wrong cookie exits before its handshake line, telling a *person* it is
"not one to run by hand". The host that launched it needs the other half: its own handshake
settings and the plugin's differ, and which variable is at stake.
"""

from __future__ import annotations

import re

from ..errors import PluginExitedError

__all__ = ["explain"]

# what rpcplugin's serve() prints, and what go-plugin's plugin.Serve prints
_OURS = re.compile(r"the (\S+) variable is missing or wrong")
_GO_PLUGIN = "This binary is a plugin"


def explain(exc: PluginExitedError, name: str, host_cookie_key: str) -> PluginExitedError:
    """``exc`` reworded when its stderr shows a cookie refusal; else ``exc`` itself."""
    tail = exc.stderr_tail or ""
    ours = _OURS.search(tail)
    if ours is None and _GO_PLUGIN not in tail:
        return exc
    plugin_key = ours[1] if ours is not None else None
    if plugin_key is None:
        checks = "the plugin does not say which variable it checks"
    elif plugin_key == host_cookie_key:
        checks = f"the plugin checks {plugin_key} too, so the cookie values differ"
    else:
        checks = f"the plugin checks {plugin_key}"
    return PluginExitedError(
        f"plugin {name!r} refused the magic cookie: this host's handshake settings and the "
        f"plugin's differ (the host set {host_cookie_key}; {checks}); give the host the "
        "plugin's cookie key and value (its generated HANDSHAKE)",
        returncode=exc.returncode,
        stderr_tail=exc.stderr_tail,
    )
