// One JSON-RPC connection to /ws for one project (docs/protocol.md), kept up on its own:
// reconnects with the relay's full-jitter backoff (0.5 s doubling to 20 s, forever), resumes its
// session, and recovers missed channel events by epoch and offset.
"use strict";

(function () {
  const BACKOFF_START_MS = 500;
  const BACKOFF_MAX_MS = 20000;

  // Full jitter: a random delay between 0 and min(max, start * 2^attempt).
  function backoffDelay(attempt) {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * Math.pow(2, attempt));
    return Math.random() * ceiling;
  }

  function socketUrl(path) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + path;
  }

  class RpcError extends Error {
    constructor(error) {
      super(error.message || "request failed");
      this.code = error.code;
      this.data = error.data || null;
    }
  }

  // Connection states shown to the user: connecting, up, down (retrying), refused (stopped).
  class Connection {
    constructor(options) {
      this.project = options.project;
      this.token = options.token || null;
      this.onState = options.onState || function () {};
      this.onRefused = options.onRefused || function () {};
      this.ws = null;
      this.ready = false;
      this.closedByUs = false;
      this.attempt = 0;
      this.nextId = 1;
      this.sessionId = null;
      this.pending = new Map(); // id -> {method, params, resolve, reject, sent}
      this.channels = new Map(); // channel -> {epoch, offset, onEvent, onGap}
      this.state = "connecting";
      this.lastError = "";
      this.open();
    }

    setState(state, detail) {
      this.state = state;
      this.lastError = detail || "";
      this.onState(state, detail || "");
    }

    open() {
      this.setState("connecting");
      let ws;
      try {
        ws = new WebSocket(socketUrl("/ws"));
      } catch (e) {
        this.retry(String(e));
        return;
      }
      this.ws = ws;
      ws.onopen = () => this.initialize();
      ws.onmessage = (event) => this.receive(event.data);
      ws.onclose = (event) => {
        if (this.ws !== ws) return;
        this.ws = null;
        this.ready = false;
        if (this.closedByUs) return;
        // 1008: credentials refused (or the server is full: that passes); 4005: the token
        // expired. Retrying cannot help.
        const full = /capacity/.test(event.reason || "");
        if ((event.code === 1008 && !full) || event.code === 4005) {
          this.refuse(event.reason || "the server refused this token");
          return;
        }
        this.retry(event.reason || "connection closed (" + event.code + ")");
      };
    }

    retry(why) {
      const delay = backoffDelay(this.attempt);
      this.attempt += 1;
      this.setState("down", why + "; retrying in " + (delay / 1000).toFixed(1) + " s");
      this.timer = setTimeout(() => this.open(), delay);
    }

    refuse(why) {
      this.closedByUs = true;
      if (this.ws) {
        const ws = this.ws;
        this.ws = null;
        ws.close(1000, "refused");
      }
      this.setState("refused", why);
      for (const p of this.pending.values()) p.reject(new RpcError({ code: -32001, message: why }));
      this.pending.clear();
      this.onRefused(why);
    }

    close() {
      this.closedByUs = true;
      clearTimeout(this.timer);
      if (this.ws) this.ws.close(1000, "console closed");
      this.ws = null;
    }

    sendRaw(message) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    }

    initialize() {
      const params = {
        protocolVersion: "2025-11-25",
        capabilities: {},
        clientInfo: { name: "codeflow-console", version: "1" },
        project: this.project,
        projectRoot: "/codeflow-console",
      };
      if (this.token) params.token = this.token;
      if (this.sessionId) params.sessionId = this.sessionId;
      const id = "init-" + this.nextId++;
      this.initId = id;
      this.sendRaw({ jsonrpc: "2.0", id: id, method: "initialize", params: params });
    }

    initialized(result) {
      const resumed = result.resumed === true;
      this.sessionId = result.sessionId;
      this.attempt = 0;
      this.ready = true;
      this.sendRaw({ jsonrpc: "2.0", method: "notifications/initialized" });
      if (!resumed) {
        // A new session: requests sent to the old one may or may not have run; say so
        // rather than run them twice. Subscriptions start again from the last event seen.
        for (const [id, p] of this.pending) {
          if (p.sent) {
            this.pending.delete(id);
            p.reject(new RpcError({
              code: -32007,
              message: "the connection was lost during `" + p.method + "`; it may or may not have run",
            }));
          }
        }
        for (const [channel, sub] of this.channels) this.resubscribe(channel, sub);
      }
      // A resumed session replays what it missed itself; unanswered requests are sent again
      // (the server answers a re-sent request once).
      for (const [id, p] of this.pending) {
        p.sent = true;
        this.sendRaw({ jsonrpc: "2.0", id: id, method: p.method, params: p.params });
      }
      this.setState("up", resumed ? "resumed" : "");
    }

    receive(text) {
      let message;
      try {
        message = JSON.parse(text);
      } catch (e) {
        return;
      }
      if (message.id !== undefined && message.id === this.initId) {
        if (message.error) {
          // Refused credentials (-32001), or a project id the server will never accept
          // (-32602): retrying cannot help. Anything else (capacity, shutdown) may pass.
          const code = message.error.code;
          if (code === -32001 || code === -32602 || code === -32003) this.refuse(message.error.message);
          else this.retry(message.error.message);
          return;
        }
        this.initialized(message.result || {});
        return;
      }
      if (message.method && message.id !== undefined && message.id !== null) {
        // The server asking us (client/* file requests): the console serves no files.
        this.sendRaw({ jsonrpc: "2.0", id: message.id, error: { code: -32601, message: "the web console serves no files" } });
        return;
      }
      if (message.method) {
        this.notification(message.method, message.params || {});
        return;
      }
      const waiting = this.pending.get(message.id);
      if (!waiting) return; // a second answer to the same id
      this.pending.delete(message.id);
      if (message.error) waiting.reject(new RpcError(message.error));
      else waiting.resolve(message.result);
    }

    notification(method, params) {
      if (method === "channels/event") {
        const sub = this.channels.get(params.channel);
        if (!sub) return;
        if (sub.epoch === params.epoch && params.offset <= sub.offset) return; // seen
        sub.epoch = params.epoch;
        sub.offset = params.offset;
        sub.onEvent(params);
      } else if (method === "channels/gap") {
        const sub = this.channels.get(params.channel);
        if (sub && sub.onGap) sub.onGap(params);
      }
    }

    request(method, params) {
      return new Promise((resolve, reject) => {
        if (this.state === "refused") {
          reject(new RpcError({ code: -32001, message: this.lastError }));
          return;
        }
        const id = this.nextId++;
        const entry = { method: method, params: params || {}, resolve: resolve, reject: reject, sent: false };
        this.pending.set(id, entry);
        if (this.ready) {
          entry.sent = true;
          this.sendRaw({ jsonrpc: "2.0", id: id, method: method, params: entry.params });
        }
      });
    }

    // Subscribes to a channel of this project. `since` ({epoch, offset}) recovers what came
    // after it; each publication, replayed or live, goes to onEvent({offset, data, timestamp}).
    async subscribe(channel, since, onEvent, onGap) {
      const params = { channel: channel };
      if (since) params.since = since;
      const result = await this.request("channels/subscribe", params);
      const sub = { epoch: result.epoch, offset: since && result.recovered ? since.offset : result.offset, onEvent: onEvent, onGap: onGap };
      this.channels.set(channel, sub);
      for (const p of result.publications || []) {
        this.notification("channels/event", { channel: channel, epoch: result.epoch, offset: p.offset, data: p.data, timestamp: p.timestamp });
      }
      sub.offset = Math.max(sub.offset, result.offset);
      return result;
    }

    async resubscribe(channel, sub) {
      try {
        const result = await this.request("channels/subscribe", { channel: channel, since: { epoch: sub.epoch, offset: sub.offset } });
        if (!result.recovered && sub.onGap) {
          sub.onGap({ channel: channel, epoch: result.epoch, missedFrom: sub.offset + 1, missedTo: result.offset });
        }
        const from = sub.offset;
        for (const p of result.publications || []) {
          if (result.epoch === sub.epoch && p.offset <= from) continue;
          this.notification("channels/event", { channel: channel, epoch: result.epoch, offset: p.offset, data: p.data, timestamp: p.timestamp });
        }
        sub.epoch = result.epoch;
        sub.offset = Math.max(sub.offset, result.offset);
      } catch (e) {
        if (sub.onGap) sub.onGap({ channel: channel, error: e.message });
      }
    }

    position(channel) {
      const sub = this.channels.get(channel);
      return sub ? { epoch: sub.epoch, offset: sub.offset } : null;
    }
  }

  window.CodeFlowRpc = { Connection: Connection, RpcError: RpcError, backoffDelay: backoffDelay, socketUrl: socketUrl };
})();
