"""The settings table of docs/operations/configuration.md, rendered from the settings schema."""

from __future__ import annotations

import sys
from typing import Any

from mit_fhir.config import GROUPS, SettingsSchema


def markdown_table() -> str:
    """One row per MIT_FHIR_* setting: its name, what uses it, its default and its meaning."""
    rows = ["| variable | used by | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in SettingsSchema().fields.items():
        meta = field.metadata
        default = meta.get("default") or _shown(field.load_default)
        rows.append(f"| `MIT_FHIR_{name}` | {meta['group']} | {default} | {meta['description']} |")
    groups = "\n".join(f"- **{group}**: {what}" for group, what in GROUPS.items())
    return "\n".join(rows) + "\n\nThe groups (a command validates only the groups it uses):\n\n" \
        + groups + "\n"


def _shown(value: Any) -> str:
    """A default value as the table shows it."""
    if value is None or value == "":
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def main(argv: list[str]) -> int:
    """`python -m mit_fhir.config.docs --markdown` prints the table."""
    if argv != ["--markdown"]:
        sys.stderr.write("usage: python -m mit_fhir.config.docs --markdown\n")
        return 2
    sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
