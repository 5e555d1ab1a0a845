"""The Procfile of `make run`, read and started by tests as a developer's machine runs it."""

import shlex
import subprocess
import sys
from pathlib import Path


def procfile_command(procfile: Path, name: str) -> list[str]:
    """The command of the Procfile's process `name`, split as a shell would."""
    for line in procfile.read_text().splitlines():
        process, _, command = line.partition(":")
        if process.strip() == name:
            return shlex.split(command)
    raise AssertionError(f"no {name} process in the Procfile")


def option(command: list[str], name: str) -> str:
    """The value given to the command's option `name`."""
    return command[command.index(name) + 1]


def start_process(procfile: Path, name: str, options: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the Procfile's process `name` from the repository, with some options' values
    replaced (a test's own port and directory) and `python` being this interpreter."""
    command = procfile_command(procfile, name)
    for flag, value in options.items():
        command[command.index(flag) + 1] = value
    command[0] = sys.executable if command[0] == "python" else command[0]
    return subprocess.Popen(command, cwd=procfile.parent)
