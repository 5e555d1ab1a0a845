"""`python -m rapport_console.operators USERNAME ROLE` reads a password from stdin and prints
the account entry to put in CONSOLE_OPERATORS (a JSON list), so no password is ever stored
in clear.
"""

import argparse
import getpass
import json
import sys

from rapport_console.operators.service import MIN_PASSWORD_LENGTH, hash_password
from rapport_console.roles import Role
from rapport_console.settings import OperatorAccount


def main(argv: list[str] | None = None) -> int:
    """Print a CONSOLE_OPERATORS entry for a new operator, the password read from stdin."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("username")
    parser.add_argument("role", choices=[role.value for role in Role])
    args = parser.parse_args(argv)
    password = getpass.getpass() if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        print(f"a password needs at least {MIN_PASSWORD_LENGTH} characters", file=sys.stderr)
        return 2
    account = OperatorAccount(
        username=args.username, role=Role(args.role), password_hash=hash_password(password)
    )
    print(json.dumps(account.model_dump(mode="json")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
