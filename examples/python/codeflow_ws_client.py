#!/usr/bin/env python3
"""A minimal CodeFlow client in Python: the wire protocol without the Rust relay.

It speaks JSON-RPC 2.0 over a WebSocket (a small hand-rolled RFC 6455 client from the standard
library; the only package it needs is `blake3`, for the content hashes), and does what the
relay does for one project:

1. `initialize`, declaring `capabilities.experimental.codeflow.fileStream = true`, then
   `notifications/initialized`;
2. `server/syncManifest` with every file under ROOT (path, size, mtime, blake3 hash), serving
   the `client/readFile` / `client/readFiles` requests the server sends while it syncs — it is a
   file-stream client in a process of its own;
3. `tools/call` of `get_document_symbols` on FILE;
4. with `--edit`: appends a function to FILE, streams the change with `server/fileChanged`
   (whole content), and asks for the symbols again.

Every answer is printed as one JSON line: {"step": ..., "result": ...}.

    pip install blake3
    python3 examples/python/codeflow_ws_client.py --server ws://127.0.0.1:3000/ws \
        --project demo --root /path/to/project --file app.py [--token JWT] [--edit]

`tests/e2e/python_client.rs` runs it against the real server. See docs/protocol.md.
"""
import argparse
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import urllib.parse

import blake3


# --- WebSocket (RFC 6455), client side, text messages only ---------------------------------

class WebSocket:
    def __init__(self, url, headers=None):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "ws":
            raise SystemExit("this example speaks ws:// only (put a TLS proxy in front for wss://)")
        host, port = parts.hostname, parts.port or 80
        path = (parts.path or "/ws") + (f"?{parts.query}" if parts.query else "")
        self.sock = socket.create_connection((host, port), timeout=120)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the server closed the connection during the upgrade")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n")[0].decode()
        if " 101 " not in status:
            raise ConnectionError(f"upgrade refused: {status}")
        accept = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        headers = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (line.partition(":") for line in head.decode().split("\r\n")[1:])
        )
        if headers.get("sec-websocket-accept") != accept:
            raise ConnectionError("bad Sec-WebSocket-Accept")

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)  # clients mask every frame
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self):
        """The next text message; answers pings, raises on close."""
        message = b""
        while True:
            b0, b1 = self._exact(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            payload = self._exact(n)  # servers do not mask
            if opcode == 0x9:
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                raise ConnectionError(f"closed by the server: {code} {payload[2:].decode(errors='replace')}")
            elif opcode in (0x1, 0x0):
                message += payload
                if b0 & 0x80:
                    return message.decode()
            # 0xA (pong) and binary frames are ignored

    def close(self):
        try:
            self._send_frame(0x8, struct.pack(">H", 1000))
        finally:
            self.sock.close()


# --- the files this client serves ----------------------------------------------------------

class Files:
    """Serves `client/*` reads for one root; paths are absolute and must stay inside it."""

    def __init__(self, root):
        self.root = os.path.realpath(root)

    def inside(self, path):
        real = os.path.realpath(path)
        if real != self.root and not real.startswith(self.root + os.sep):
            raise RpcError(-33004, f"{path} is outside the project root")
        return real

    def read(self, path):
        real = self.inside(path)
        try:
            data = open(real, "rb").read()
        except FileNotFoundError:
            raise RpcError(-33001, f"{path} not found")
        try:
            content, encoding = data.decode("utf-8"), "utf8"
        except UnicodeDecodeError:
            content, encoding = base64.b64encode(data).decode(), "base64"
        return {
            "content": content,
            "encoding": encoding,
            "mtime": int(os.stat(real).st_mtime * 1000),
            "size": len(data),
            "hash": blake3.blake3(data).hexdigest(),
        }

    def manifest(self):
        files = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
            for name in filenames:
                full = os.path.join(dirpath, name)
                data = open(full, "rb").read()
                files.append({
                    "path": os.path.relpath(full, self.root).replace(os.sep, "/"),
                    "size": len(data),
                    "mtime": int(os.stat(full).st_mtime * 1000),
                    "hash": blake3.blake3(data).hexdigest(),
                })
        return files


class RpcError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


# --- JSON-RPC over the socket --------------------------------------------------------------

class Client:
    def __init__(self, ws, files):
        self.ws, self.files, self.next_id = ws, files, 0

    def send(self, message):
        self.ws.send(json.dumps(message))

    def notify(self, method, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def call(self, method, params):
        """Sends a request and serves the server's requests until its answer arrives."""
        self.next_id += 1
        my_id = self.next_id
        self.send({"jsonrpc": "2.0", "id": my_id, "method": method, "params": params})
        while True:
            message = json.loads(self.ws.recv())
            if "method" in message and "id" in message:
                self.serve(message)
            elif "method" in message:
                pass  # notifications (channels/event, progress…) are not needed here
            elif message.get("id") == my_id:
                if "error" in message:
                    raise RpcError(message["error"]["code"], message["error"]["message"])
                return message["result"]

    def serve(self, request):
        method, params = request["method"], request.get("params") or {}
        try:
            if method == "client/readFile":
                result = self.files.read(params["path"])
            elif method == "client/readFiles":
                entries = []
                for path in params["paths"]:
                    try:
                        entries.append({"path": path, "file": self.files.read(path)})
                    except RpcError as e:
                        entries.append({"path": path, "error": {"code": e.code, "message": e.message}})
                result = {"files": entries}
            elif method == "client/fileExists":
                result = {"exists": os.path.exists(self.files.inside(params["path"]))}
            else:
                # This example never writes: the server's write tools get a clear refusal.
                raise RpcError(-32601, f"{method} is not served by this example client")
            self.send({"jsonrpc": "2.0", "id": request["id"], "result": result})
        except RpcError as e:
            self.send({"jsonrpc": "2.0", "id": request["id"],
                       "error": {"code": e.code, "message": e.message}})


def symbols(client, file):
    return client.call("tools/call", {
        "name": "get_document_symbols",
        "arguments": {"file_path": file},
    })


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True, help="ws://HOST:PORT/ws")
    parser.add_argument("--project", required=True)
    parser.add_argument("--root", required=True, help="the project directory (served to the server)")
    parser.add_argument("--file", required=True, help="a file to outline, relative to the root")
    parser.add_argument("--token", default=os.environ.get("CODEFLOW_TOKEN"))
    parser.add_argument("--edit", action="store_true", help="append a function and stream the change")
    args = parser.parse_args()

    files = Files(args.root)
    ws = WebSocket(args.server)
    client = Client(ws, files)
    out = lambda step, result: print(json.dumps({"step": step, "result": result}), flush=True)

    params = {
        "protocolVersion": "2025-11-25",
        "capabilities": {"experimental": {"codeflow": {"fileStream": True}}},
        "clientInfo": {"name": "codeflow-python-example", "version": "0.1"},
        "project": args.project,
        "projectRoot": files.root,
    }
    if args.token:
        params["token"] = args.token
    out("initialize", client.call("initialize", params))
    client.notify("notifications/initialized", {})
    out("syncManifest", client.call("server/syncManifest", {"files": files.manifest()}))
    out("symbols", symbols(client, args.file))

    if args.edit:
        path = os.path.join(files.root, args.file)
        with open(path, "a") as f:
            f.write("\n\ndef added_by_the_python_client():\n    return 42\n")
        data = open(path, "rb").read()
        client.notify("server/fileChanged", {
            "path": path,
            "changeType": "changed",
            "hash": blake3.blake3(data).hexdigest(),
            "size": len(data),
            "content": data.decode(),
            "encoding": "utf8",
        })
        # The server applies file events in arrival order before the next call runs.
        out("symbolsAfterEdit", symbols(client, args.file))
    ws.close()


if __name__ == "__main__":
    try:
        main()
    except (RpcError, ConnectionError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
