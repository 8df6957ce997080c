"""Admin commands: `python app.py merchant create|list|rotate-key`.

A new or rotated API key is printed once, alone on the last line of stdout (so a script
can take it with `tail -n 1`), and never logged or stored in clear.
"""

from __future__ import annotations

import argparse
import sys

from kitchen import merchants
from kitchen.validation import Conflict, NotFound, is_email


def add_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", metavar="merchant")
    merchant = commands.add_parser("merchant", help="create, list or rotate merchant keys")
    actions = merchant.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a merchant and print its API key")
    create.add_argument("--name", required=True)
    create.add_argument("--email", required=True, help="where its low-stock alerts go")
    actions.add_parser("list", help="list merchants (never their keys)")
    rotate = actions.add_parser("rotate-key", help="give a merchant a new key; the old one dies")
    rotate.add_argument("id", type=int)


def run(args: argparse.Namespace) -> int:
    """Run a merchant command against the bound database; returns the exit code."""
    try:
        if args.action == "create":
            name = args.name.strip()
            if not name or len(name) > 100 or not is_email(args.email):
                print(
                    "merchant create: needs a name (1-100 characters) and an email address",
                    file=sys.stderr,
                )
                return 2
            merchant, key = merchants.create(name, args.email)
            print(f"merchant {merchant.id} created: {merchant.name} <{merchant.alert_email}>")
            print("its API key, shown once (Authorization: Bearer <key>):")
            print(key)
        elif args.action == "list":
            for m in merchants.all_merchants():
                print(f"{m.id}\t{m.name}\t{m.alert_email}")
        elif args.action == "rotate-key":
            key = merchants.rotate_key(args.id)
            print(f"merchant {args.id}: new API key, shown once; the old one no longer works:")
            print(key)
    except (Conflict, NotFound) as exc:
        print(f"merchant {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
