"""Defer the body of LanceDB's generated REST namespace client, which `import lancedb` runs and Arp never uses.

`lance_namespace` imports `lance_namespace_urllib3_client.models`, and that package's `__init__` imports all of its
REST endpoint classes (pydantic `validate_call` on each): about 0.9 s of the app's 2 s cold `import lancedb` on the
2-core box. Registering the package with its search path but not its `__init__` lets the models load as submodules;
the first attribute read on the package itself (a REST namespace in use) runs its real `__init__` then.
"""

from __future__ import annotations

import importlib.util
import sys
import types

PACKAGE = "lance_namespace_urllib3_client"


def defer_rest_client_init(package: str = PACKAGE) -> bool:
    """Register `package` so that its `__init__` runs on first attribute access; False if already imported or absent."""
    if package in sys.modules:
        return False
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None or spec.submodule_search_locations is None:
        return False
    module = types.ModuleType(package)
    module.__spec__ = spec
    module.__file__ = spec.origin
    module.__path__ = list(spec.submodule_search_locations)
    module.__package__ = package
    origin = spec.origin

    def run_init(name: str) -> object:
        """Run the package's real `__init__` once, then answer the attribute from it."""
        if name.startswith("__"):
            raise AttributeError(name)
        module.__dict__.pop("__getattr__", None)
        with open(origin, encoding="utf-8") as source:
            exec(compile(source.read(), origin, "exec"), module.__dict__)  # noqa: S102 - the installed package's own code
        return getattr(module, name)

    setattr(module, "__getattr__", run_init)  # noqa: B010 - a module-level __getattr__ (PEP 562)
    sys.modules[package] = module
    return True
