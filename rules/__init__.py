"""gradlint's rules, one module per rule (installed as ``gradlint.rules``)."""

if __name__ != "gradlint.rules":
    # Installed only under gradlint; a top-level ``rules`` would shadow users' own modules.
    raise ImportError("'rules' is part of gradlint: import gradlint.rules instead")
