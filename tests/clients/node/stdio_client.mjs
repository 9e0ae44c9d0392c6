// An official MCP TypeScript SDK client launches codeflow-client (the relay) as its stdio
// server, lists the tools and calls health_check.
//
//   node stdio_client.mjs ERA RELAY SERVER_URL PROJECT ROOT
//
// ERA is `auto` (SDK 2.x, `versionNegotiation: {mode: 'auto'}`: probes with server/discover and
// speaks 2026-07-28 when offered) or `2025` (SDK 1.x, a 2025-era client: initialize only).
// Prints one JSON line with what it saw; exits non-zero on any failure.

const [era, relay, server, project, root] = process.argv.slice(2);
const serverParams = {
  command: relay,
  args: ['--server', server, '--project', project, '--root', root],
  stderr: 'inherit',
};

async function connect() {
  if (era === 'auto') {
    const { Client } = await import('@modelcontextprotocol/client');
    const { StdioClientTransport } = await import('@modelcontextprotocol/client/stdio');
    const client = new Client(
      { name: 'codeflow-e2e-sdk2', version: '1.0.0' },
      { versionNegotiation: { mode: 'auto' } },
    );
    await client.connect(new StdioClientTransport(serverParams));
    return {
      client,
      version: client.getNegotiatedProtocolVersion(),
      discovered: client.getDiscoverResult() ?? null,
    };
  }
  if (era === '2025') {
    const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
    const { StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js');
    const client = new Client({ name: 'codeflow-e2e-sdk1', version: '1.0.0' });
    const transport = new StdioClientTransport(serverParams);
    // SDK 1.x hands the version the server answered `initialize` with to a transport that
    // takes it (its HTTP transport does; this one is given the hook to record it).
    let negotiated = null;
    transport.setProtocolVersion = (version) => { negotiated = version; };
    await client.connect(transport);
    // The 2025 revision's session methods still work.
    await client.ping();
    await client.setLoggingLevel('info');
    return { client, version: negotiated, discovered: null };
  }
  throw new Error(`unknown era ${era}`);
}

const { client, version, discovered } = await connect();
const tools = await client.listTools();
const result = await client.callTool({ name: 'health_check', arguments: { include_details: true } });
console.log(JSON.stringify({
  protocol_version: version,
  server: client.getServerVersion()?.name ?? null,
  discovered,
  tools: tools.tools.map((t) => t.name).sort(),
  is_error: Boolean(result.isError),
  structured: result.structuredContent ?? null,
  text: result.content?.[0]?.text ?? '',
}));
await client.close();
process.exit(0);
