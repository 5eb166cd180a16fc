"""What the deployment guide (docs/operations/deploy.md) tells an operator to run, read from it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "operations" / "deploy.md"
SECRET_NAME = "mit-fhir-secrets"


def shell_blocks(text: str | None = None) -> list[str]:
    """The guide's ```sh blocks, in order."""
    text = GUIDE.read_text(encoding="utf-8") if text is None else text
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.M | re.S)


def secret_command(text: str | None = None) -> str:
    """The one block that creates the Secret, exactly as printed."""
    found = [b for b in shell_blocks(text)
             if b.startswith(f"kubectl create secret generic {SECRET_NAME} ")]
    assert len(found) == 1, f"{GUIDE.name}: expected one block creating {SECRET_NAME}"
    return found[0]


def secret_keys(command: str) -> dict[str, str]:
    """The Secret's keys the command creates: key -> 'literal' or 'file'."""
    words = shlex.split(command.replace("\\\n", " ").split("|")[0])
    keys = {}
    for word in words:
        match = re.fullmatch(r"--from-(literal|file)=([\w.-]+)=.*", word)
        if match:
            keys[match.group(2)] = match.group(1)
    return keys


def install_commands(text: str | None = None) -> list[str]:
    """The first installation's commands (the block that starts by applying the ConfigMap)."""
    found = [b for b in shell_blocks(text) if b.startswith("kubectl apply -f deploy/config.yaml")]
    assert len(found) == 1, f"{GUIDE.name}: expected one first-installation block"
    return [line for line in found[0].splitlines() if line.strip()]
