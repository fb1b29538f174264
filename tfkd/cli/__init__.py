"""The `tfkd` command and the demo."""
