"""The examples' conftest: with pytest's default import mode, its directory (examples/) goes on
``sys.path`` as the session starts, so ``my_templates:SenderCounter`` imports wherever it is named:
in a test module's marker, and in ``scenarios/gashammer_custom_template.yaml``, which is validated
when it is collected (before any test module here is imported)."""
