"""Transaction templates and their registry."""

from pytest_gashammer.workload.base import SetupContext, Template, TemplateContext
from pytest_gashammer.workload.registry import BUILTIN, resolve_template

__all__ = ["BUILTIN", "SetupContext", "Template", "TemplateContext", "resolve_template"]
