"""``gateway-cli jobs ...``: scheduled jobs over the REST API (list, show, create, run,
runs, pause, resume, delete). Jobs are named by their name or id.

Exit codes: 0 ok, 2 usage or config error, 4 HTTP or auth failure (as print mode)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional

import httpx

from .config import ConfigError, load

USAGE_EXIT = 2
HTTP_EXIT = 4


class Failed(Exception):
    """An answer that is not 2xx, with the gateway's message."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gateway-cli jobs",
                                description="Scheduled jobs of the gateway.")
    p.add_argument("--url", help="gateway URL")
    p.add_argument("--token", help="API token (gw_...)")
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="your jobs")
    for name in ("show", "run", "runs", "pause", "resume", "delete"):
        sub.add_parser(name).add_argument("job", help="the job's name or id")
    create = sub.add_parser("create", help="a new job")
    create.add_argument("name")
    create.add_argument("--prompt", required=True)
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help='5-field cron expression, e.g. "0 9 * * 1-5"')
    when.add_argument("--every", type=int, metavar="SECONDS", help="an interval (>= 60)")
    when.add_argument("--at", metavar="ISO-TIME", help="once, at this time")
    create.add_argument("--timezone", default="UTC", help="the cron's time zone")
    create.add_argument("--profile")
    create.add_argument("--allow-tool", action="append", default=[], dest="allowed_tools",
                        help="a tool runs may call unasked (repeatable)")
    create.add_argument("--notify", action="append", default=[], dest="destinations",
                        help="a destination's name (repeatable)")
    create.add_argument("--paused", action="store_true", help="create it paused")
    return p


class Jobs:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, path, json=body)
        if not response.is_success:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise Failed(f"HTTP {response.status_code}: {message}")
        return response.json()

    def resolve(self, job: str) -> dict[str, Any]:
        for row in self.call("GET", "/api/jobs")["jobs"]:
            if row["name"] == job or str(row["id"]) == job:
                return row
        raise Failed(f"no job {job!r}")

    def run(self, args: argparse.Namespace) -> Any:
        if args.command == "list":
            return self.call("GET", "/api/jobs")
        if args.command == "create":
            return self.call("POST", "/api/jobs", create_body(args))
        job = self.resolve(args.job)
        path = f"/api/jobs/{job['id']}"
        actions = {
            "show": lambda: job,
            "run": lambda: self.call("POST", f"{path}/run"),
            "runs": lambda: self.call("GET", f"{path}/runs"),
            "pause": lambda: self.call("PATCH", path, {"enabled": False}),
            "resume": lambda: self.call("PATCH", path, {"enabled": True}),
            "delete": lambda: self.call("DELETE", path),
        }
        return actions[args.command]()


def create_body(args: argparse.Namespace) -> dict[str, Any]:
    if args.cron:
        schedule: dict[str, Any] = {"kind": "cron", "cron": args.cron,
                                    "timezone": args.timezone}
    elif args.every:
        schedule = {"kind": "interval", "seconds": args.every}
    else:
        schedule = {"kind": "once", "at": args.at}
    body = {"name": args.name, "prompt": args.prompt, "schedule": schedule,
            "enabled": not args.paused, "allowed_tools": args.allowed_tools,
            "destinations": args.destinations}
    if args.profile:
        body["profile"] = args.profile
    return body


def describe_schedule(schedule: dict[str, Any]) -> str:
    if schedule["kind"] == "cron":
        return f"cron {schedule['cron']} ({schedule['timezone']})"
    if schedule["kind"] == "interval":
        return f"every {schedule['seconds']}s"
    return f"once at {schedule['at']}"


def render(command: str, result: Any) -> str:
    """Plain text for people (``--json`` prints the API's answer instead)."""
    if command == "list":
        return "\n".join(f"{j['id']:>4}  {j['name']:<24} "
                         f"{'on ' if j['enabled'] else 'off'}  {describe_schedule(j['schedule'])}"
                         f"  next {j['next_fire_at'] or '-'}" for j in result["jobs"]) \
            or "no jobs"
    if command == "runs":
        return "\n".join(f"{r['id']:>5}  {r['status']:<11} {r['trigger']:<8} "
                         f"{r['started_at']}  {r['duration_ms'] or '-'} ms  "
                         f"{(r['usage'] or {}).get('output_tokens', '-')} tokens out"
                         for r in result["runs"]) or "no runs"
    if command == "run":
        return f"run {result['id']} started in chat {result['chat_id']}"
    if command == "delete":
        return "deleted"
    return (f"{result['id']} {result['name']} ({'enabled' if result['enabled'] else 'paused'})"
            f"\n  schedule: {describe_schedule(result['schedule'])}"
            f"\n  next:     {result['next_fire_at'] or '-'}\n  chat:     {result['chat_id']}"
            f"\n  tools:    {', '.join(result['allowed_tools']) or '-'}"
            f"\n  notify:   {', '.join(result['destinations']) or '-'}"
            + (f"\n  note:     {result['note']}" if result.get("note") else "")
            + f"\n  prompt:   {result['prompt']}")


def main(argv: Optional[list[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = load(args.url, args.token)
    except ConfigError as exc:
        print(f"gateway-cli: {exc}", file=sys.stderr)
        return USAGE_EXIT
    headers = {"Authorization": f"Bearer {config.token}"}
    try:
        with httpx.Client(base_url=config.url, headers=headers, timeout=60) as http:
            result = Jobs(http).run(args)
    except (Failed, httpx.HTTPError) as exc:
        print(f"gateway-cli: {exc}", file=sys.stderr)
        return HTTP_EXIT
    print(json.dumps(result, indent=2) if args.json else render(args.command, result))
    return 0
