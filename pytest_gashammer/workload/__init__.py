"""Transaction templates and their registry."""

from pytest_gashammer.workload.base import Template, TemplateContext
from pytest_gashammer.workload.registry import BUILTIN, resolve_template

__all__ = ["BUILTIN", "Template", "TemplateContext", "resolve_template"]
