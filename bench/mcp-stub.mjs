#!/usr/bin/env node
// A minimal stdio MCP server: the peer side of the P1 benchmark. supergateway bridges it to
// WebSocket. It answers initialize, ping, tools/list and tools/call (one tool, `health_check`,
// that returns a short text), ignores notifications, and exits when stdin closes.
import { createInterface } from 'node:readline';

const tools = [
  {
    name: 'health_check',
    description: 'Reports that the server is alive.',
    inputSchema: { type: 'object', properties: {} },
  },
];

function reply(id, result) {
  process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id, result }) + '\n');
}

function fail(id, code, message) {
  process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } }) + '\n');
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  if (!line.trim()) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    fail(null, -32700, 'parse error');
    return;
  }
  if (msg.id === undefined || msg.id === null) return; // a notification
  switch (msg.method) {
    case 'initialize':
      reply(msg.id, {
        protocolVersion: msg.params?.protocolVersion ?? '2025-06-18',
        capabilities: { tools: {} },
        serverInfo: { name: 'bench-stub', version: '0.1.0' },
      });
      break;
    case 'ping':
      reply(msg.id, {});
      break;
    case 'tools/list':
      reply(msg.id, { tools });
      break;
    case 'tools/call':
      if (msg.params?.name === 'health_check') {
        reply(msg.id, { content: [{ type: 'text', text: '{"status":"ok"}' }], isError: false });
      } else {
        fail(msg.id, -32602, `unknown tool ${msg.params?.name}`);
      }
      break;
    default:
      fail(msg.id, -32601, `method not found: ${msg.method}`);
  }
});
rl.on('close', () => process.exit(0));
