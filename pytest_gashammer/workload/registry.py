"""Template lookup by built-in name or ``module:Class`` import path."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pytest_gashammer.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from pytest_gashammer.workload.base import Template

BUILTIN: dict[str, str] = {
    "transfer": "pytest_gashammer.workload.transfer:TransferTemplate",
    "erc20": "pytest_gashammer.workload.erc20:Erc20TransferTemplate",
    "storage": "pytest_gashammer.workload.storage:StorageTemplate",
    "calldata": "pytest_gashammer.workload.calldata:CalldataTemplate",
    "deploy": "pytest_gashammer.workload.deploy:DeployTemplate",
    "revert": "pytest_gashammer.workload.revert:RevertTemplate",
}

#: What a template's import path looks like (``package.module:TemplateClass``), for the JSON Schema of
#: scenario files; ``resolve_template`` is the judge of whether it imports.
IMPORT_PATH_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


def _import_path(name: str) -> str:
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" in name:
        return name
    raise ConfigError(
        f"unknown template {name!r}{did_you_mean(name, BUILTIN)} in workload=...; use one of {', '.join(sorted(BUILTIN))} "
        "or an import path 'package.module:TemplateClass'"
    )


def resolve_template(name: str) -> type[Template]:
    """The template class behind ``name``; raises :class:`ConfigError` with the fix when it cannot."""
    from pytest_gashammer.workload.base import Template

    path = _import_path(name)
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"template {name!r}: cannot import module {module_name!r} ({exc}); make it importable on every edge"
        ) from None
    template = getattr(module, attribute, None)
    if not (isinstance(template, type) and issubclass(template, Template)):
        raise ConfigError(
            f"template {name!r}: {path} is not a subclass of pytest_gashammer.workload.Template"
        )
    return template
