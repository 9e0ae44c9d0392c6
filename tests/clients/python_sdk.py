"""The official MCP Python SDK launches codeflow-client as a stdio MCP server, lists the tools and
calls health_check. Usage: python_sdk.py RELAY_BINARY SERVER_URL PROJECT ROOT

Prints one JSON line with what it saw; exits non-zero on any failure.
"""
import asyncio
import json
import sys

from mcp import Client, StdioServerParameters


async def main() -> None:
    relay, server, project, root = sys.argv[1:5]
    params = StdioServerParameters(
        command=relay, args=["--server", server, "--project", project, "--root", root]
    )
    async with Client(params, read_timeout_seconds=20) as client:
        tools = await client.list_tools()
        names = sorted(t.name for t in tools.tools)
        result = await client.call_tool("health_check", {"include_details": True})
        if not str(client.protocol_version).startswith("2026"):
            # Session methods of the 2025 revision (2026-07-28 removed them).
            await client.set_logging_level("debug")
            await client.send_ping()
        print(json.dumps({
            "protocol_version": str(client.protocol_version),
            "server": client.server_info.name if client.server_info else None,
            "tools": names,
            "is_error": bool(result.is_error),
            "structured": result.structured_content,
            "text": result.content[0].text if result.content else "",
        }))


asyncio.run(main())
