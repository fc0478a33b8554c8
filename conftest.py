"""Repository-level pytest configuration: the plugin's own acceptance tests drive pytest with pytester."""

pytest_plugins = ["pytester"]
