"""Admin commands: `python app.py merchant create|list|rotate-key|key add|key list|key revoke`.

A new or rotated API key is printed once, alone on the last line of stdout (so a script
can take it with `tail -n 1`), and never logged or stored in clear. What merchants wrote
(names, addresses) is printed escaped, or as JSON with `--json`: it never reaches the
operator's terminal raw.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kitchen import merchants
from kitchen.commands import AddKey, CreateMerchant
from kitchen.domain import MAX_ID
from kitchen.errors import Conflict, Invalid, NotFound
from kitchen.models import ApiKey
from kitchen.views import iso


def add_commands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """The `merchant` commands; returns the subcommands, for other modules' commands."""
    commands = parser.add_subparsers(dest="command", metavar="merchant|digest")
    merchant = commands.add_parser("merchant", help="create, list merchants; manage their keys")
    actions = merchant.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a merchant and print its API key")
    create.add_argument("--name", required=True)
    create.add_argument("--email", required=True, help="where its low-stock alerts go")
    listing = actions.add_parser("list", help="list merchants (never their keys)")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    rotate = actions.add_parser(
        "rotate-key", help='give a merchant\'s key "primary" a new value; the old one dies'
    )
    rotate.add_argument("merchant", metavar="MERCHANT", help="merchant id")
    key = actions.add_parser("key", help="a merchant's named keys: add, list, revoke")
    key_actions = key.add_subparsers(dest="key_action", required=True)
    add = key_actions.add_parser("add", help="make a named key and print it")
    add.add_argument("merchant", metavar="MERCHANT", help="merchant id")
    add.add_argument("--name", required=True, help="what uses it, e.g. till-1")
    key_list = key_actions.add_parser("list", help="names, created, last used (never the keys)")
    key_list.add_argument("merchant", metavar="MERCHANT", help="merchant id")
    key_list.add_argument("--json", action="store_true", help="one JSON array")
    revoke = key_actions.add_parser("revoke", help="the named key stops working")
    revoke.add_argument("merchant", metavar="MERCHANT", help="merchant id")
    revoke.add_argument("name", metavar="NAME")
    return commands


class Usage(Exception):
    """An argument that is wrong, its message escaped already (see `shown`)."""


# What each error exits with, the one place the CLI maps errors to exit codes: a wrong
# argument 2, a use case that cannot do what was asked 1. A subclass takes its base's.
EXIT_CODES: dict[type[Exception], int] = {Usage: 2, Invalid: 2, Conflict: 1, NotFound: 1}

# The commands' fields (kitchen.commands) as the CLI's arguments: a field's error names the
# argument (`--email: must be an email address`).
ARGUMENTS = {"name": "--name", "alert_email": "--email"}


def shown(text: str) -> str:
    """User text as one inert line: a control character (tab, newline, escape), an
    invisible formatting character, a lone surrogate or a backslash is written as its
    Python escape, so it can neither forge a row nor drive the terminal."""
    return "".join(
        c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def merchant_id(text: str) -> int:
    """MERCHANT as given: an id that can name a row, else a Usage error."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_ID:
        raise Usage(f"MERCHANT must be a merchant id from 1 to {MAX_ID}, not {shown(text)!r}")
    return int(text)


def run(args: argparse.Namespace) -> int:
    """Run a merchant command against the bound database; returns the exit code."""
    action = args.action if args.action != "key" else f"key {args.key_action}"
    try:
        _run(args)
    except tuple(EXIT_CODES) as exc:
        print(f"merchant {action}: {_message(exc)}", file=sys.stderr)
        return next(code for kind, code in EXIT_CODES.items() if isinstance(exc, kind))
    return 0


def _message(exc: Exception) -> str:
    """The error as one escaped line; a field's error names the CLI's argument, in the
    arguments' order."""
    if isinstance(exc, Usage):
        return str(exc)
    if isinstance(exc, Invalid):
        named = sorted(f"{ARGUMENTS.get(e.field, e.field)}: {e.message}" for e in exc.errors)
        return "; ".join(shown(line) for line in named)
    return shown(str(exc))


def _run(args: argparse.Namespace) -> None:
    if args.action == "create":
        new = CreateMerchant.parse({"name": args.name, "alert_email": args.email})
        merchant, key = merchants.create(new.name, new.alert_email)
        name, email = shown(merchant.name), shown(merchant.alert_email)
        print(f"merchant {merchant.id} created: {name} <{email}>")
        print(f'its API key "{ApiKey.PRIMARY}", shown once (Authorization: Bearer <key>):')
        print(key)
    elif args.action == "list":
        rows = merchants.all_merchants()
        if args.json:
            print(json.dumps([_merchant_json(m) for m in rows]))
        else:
            for m in rows:
                print(f"{m.id}\t{shown(m.name)}\t{shown(m.alert_email)}")
    elif args.action == "rotate-key":
        ident = merchant_id(args.merchant)
        key = merchants.rotate_key(ident)
        print(
            f'merchant {ident}: new value of its key "{ApiKey.PRIMARY}", shown once; the old '
            f"one no longer works (its other keys are unchanged):"
        )
        print(key)
    elif args.key_action == "add":
        ident = merchant_id(args.merchant)
        name = AddKey.parse({"name": args.name}).name
        key = merchants.add_key(ident, name)
        print(f'merchant {ident}: key "{shown(name)}" added, shown once (Bearer <key>):')
        print(key)
    elif args.key_action == "list":
        keys = merchants.keys(merchant_id(args.merchant))
        if args.json:
            print(json.dumps([_key_json(k) for k in keys]))
        else:
            for k in keys:
                used = iso(k.last_used_at) or "never"
                print(f"{shown(k.name)}\tcreated {iso(k.created_at)}\tlast used {used}")
    elif args.key_action == "revoke":
        ident = merchant_id(args.merchant)
        merchants.revoke_key(ident, args.name)
        print(
            f'merchant {ident}: key "{shown(args.name)}" revoked (running API processes '
            f"stop taking it within {merchants.KnownKeys.TTL:g} s)"
        )


def _merchant_json(m: Any) -> dict[str, Any]:
    return {"id": m.id, "name": m.name, "alert_email": m.alert_email, "default": m.is_default}


def _key_json(k: ApiKey) -> dict[str, Any]:
    return {"name": k.name, "created_at": iso(k.created_at), "last_used_at": iso(k.last_used_at)}
