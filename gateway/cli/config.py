"""``gateway settings``: the settings in effect, or the README's table of every setting."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway import settings
from gateway.cli import common


def cmd_settings(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(settings.markdown_table())
    else:
        common.print_json(common.load_settings(args).describe())
    return 0


def add_parser(sub: Any) -> None:
    st = sub.add_parser(
        "settings",
        help="print the settings in effect (secrets masked), or the table of all settings",
        description="Print the settings this environment and these flags give, as JSON with "
        "secrets masked; with --markdown, the README's table of every setting, its "
        "environment variable, default and meaning.",
    )
    st.add_argument(
        "--markdown", action="store_true", help="print the table of every setting instead"
    )
    st.set_defaults(func=cmd_settings)
