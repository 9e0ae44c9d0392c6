// The official MCP TypeScript SDK 2.x's Streamable HTTP client on codeflow-server's `/mcp`:
// lists the tools and calls each `TOOL=ARGS_JSON` given, in order.
//
//   node http_client.mjs URL TOKEN MODE [TOOL=ARGS_JSON]...
//
// TOKEN `-` sends no Authorization header. MODE is the SDK's version negotiation: `legacy` (its
// default: 2025-11-25, `initialize` and Mcp-Session-Id) or `auto` (probes with server/discover,
// then stateless 2026-07-28 requests). Prints one JSON line: the negotiated version, the
// tool names and each call's outcome (or the connect error); exits non-zero only on a bug here.

import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const [url, token, mode, ...calls] = process.argv.slice(2);
const headers = token === '-' ? {} : { Authorization: `Bearer ${token}` };
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
const client = new Client(
  { name: 'codeflow-e2e-http', version: '1.0.0' },
  { versionNegotiation: { mode } },
);

try {
  await client.connect(transport);
} catch (e) {
  console.log(JSON.stringify({ connected: false, error: String(e?.message ?? e), status: e?.status ?? e?.data?.status ?? null }));
  process.exit(0);
}

const tools = await client.listTools();
const results = [];
for (const call of calls) {
  const at = call.indexOf('=');
  const name = call.slice(0, at);
  const args = JSON.parse(call.slice(at + 1));
  try {
    const result = await client.callTool({ name, arguments: args });
    results.push({
      tool: name,
      is_error: Boolean(result.isError),
      structured: result.structuredContent ?? null,
      text: result.content?.[0]?.text ?? '',
    });
  } catch (e) {
    results.push({ tool: name, rpc_error: String(e?.message ?? e), code: e?.code ?? null });
  }
}
console.log(JSON.stringify({
  connected: true,
  protocol_version: client.getNegotiatedProtocolVersion() ?? null,
  session_id: transport.sessionId ?? null,
  server: client.getServerVersion()?.name ?? null,
  tools: tools.tools.map((t) => t.name).sort(),
  results,
}));
await transport.terminateSession().catch(() => {});
await client.close();
process.exit(0);
