"""Command line: python -m dashboard {up,serve,migrate,demo,create-user}."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from dashboard.config import Settings
from dashboard.db import Database
from dashboard.errors import StoreError
from dashboard.migrate import upgrade
from dashboard.roles import Role
from dashboard.store import Store

T = TypeVar("T")


async def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    store = Store(Database(settings.database_url), settings=settings)
    await store.start()
    try:
        return await work(store)
    finally:
        await store.stop()
        await store.db.dispose()


def _demo(settings: Settings) -> None:
    from dashboard.demo import load_demo

    logins = asyncio.run(_with_store(settings, load_demo))
    print("Demo logins (synthetic data only):")
    for login in logins:
        print(f"  {login.role:<12} {login.username:<12} password: {login.password}")


def _create_user(settings: Settings, args: argparse.Namespace) -> int:
    password = args.password or getpass.getpass("Password (at least 12 characters): ")

    async def work(store: Store):
        if args.role != Role.LEAD:
            raise SystemExit("create-user makes the first lead; leads create other accounts in Admin")
        return await store.bootstrap_lead(username=args.username, email=args.email, password=password)

    try:
        user = asyncio.run(_with_store(settings, work))
    except StoreError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(f"created lead {user.username}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from dashboard import log_privacy

    log_privacy.install()  # every command, not only the server: no patient data in any log line
    parser = argparse.ArgumentParser(prog="python -m dashboard", description="OT Tracker")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="migrate, load demo data, print the demo logins and serve")
    commands.add_parser("serve", help="serve the app")
    commands.add_parser("migrate", help="upgrade the database to the newest schema")
    commands.add_parser("demo", help="load synthetic demo data (once) and print the logins")
    create = commands.add_parser("create-user", help="make the first lead of an empty installation")
    create.add_argument("--username", required=True)
    create.add_argument("--email", required=True)
    create.add_argument("--role", default=Role.LEAD.value, choices=[Role.LEAD.value])
    create.add_argument("--password", help="prompted for when omitted")
    cluster = commands.add_parser("cluster", help="try several instances on one PostgreSQL behind HAProxy "
                                                  "(this machine; needs OT_DATABASE_URL and haproxy)")
    cluster.add_argument("--instances", type=int, default=3)
    cluster.add_argument("--base-port", type=int, default=8081, help="the first instance's port (then +1, ...)")
    cluster.add_argument("--bind", default="127.0.0.1:8080", help="where HAProxy listens")
    args = parser.parse_args(argv)
    if args.command == "cluster":  # before Settings: it checks the environment itself, and starts the others
        from dashboard.cluster import run

        return run(args.instances, base_port=args.base_port, bind=args.bind)
    settings = Settings.from_env()

    if args.command in ("migrate", "up", "demo", "create-user"):
        upgrade(settings.database_url)
    if args.command == "create-user":
        return _create_user(settings, args)
    if args.command in ("demo", "up"):
        _demo(settings)
    if args.command in ("serve", "up"):
        from dashboard.server import serve

        print(f"OT Tracker on http://{settings.host}:{settings.port}", flush=True)
        serve(settings)
    return 0


if __name__ in ("__main__", "__mp_main__"):
    sys.exit(main())
