"""Your own pieces by import path: ``"package.module:Name"``.

A config may name a dataset class (``data.format: mypackage.datasets:LeafSegmentation``)
or a model class (``model.name: mypackage.models:TinyNet``) instead of a built-in
name. The module is imported in every process that reads the config (so the CLI and
``torchrun`` see it), and the name must be a class of the right kind. Importing a
module runs its code: only name modules you trust, as with any Python import.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import UserError


class PluginError(UserError):
    """An import path that does not import, or names something of the wrong kind."""


def is_import_path(name: str) -> bool:
    """``"package.module:Name"``: a module, a colon, and an attribute path."""
    module, colon, attribute = name.partition(":")
    return bool(colon and module and attribute) and " " not in name


def import_object(path: str, key: str) -> Any:
    """The object ``path`` names; one line naming ``key`` when it does not import."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise PluginError(
            f"{key}={path}: cannot import module '{module_name}' ({err}); is its folder on "
            "PYTHONPATH (or the package installed) in every process?"
        ) from err
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as err:
            raise PluginError(f"{key}={path}: module '{module_name}' has no '{attribute}'") from err
    return target


def import_class(path: str, key: str, base: type) -> type:
    """A class that subclasses ``base`` (a dataset, an ``nn.Module``), else one line."""
    target = import_object(path, key)
    if not (isinstance(target, type) and issubclass(target, base)):
        raise PluginError(
            f"{key}={path}: names {type(target).__name__} '{path.partition(':')[2]}', "
            f"not a subclass of {base.__module__}.{base.__qualname__}"
        )
    return target
