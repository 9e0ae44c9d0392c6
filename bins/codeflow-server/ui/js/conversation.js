// A Claude run's events (the `ai-response` channel, or the message log's run.* entries)
// rendered as a readable conversation: assistant text, tool calls and their results folded, the
// final result and cost. Each run is one <article>; an event seen twice is shown once.
"use strict";

(function () {
  const el = CF.el;
  const MAX_LINES = 2000;

  function json(value) {
    try {
      return JSON.stringify(value, null, 2);
    } catch (e) {
      return String(value);
    }
  }

  function folded(summary, body, cls) {
    return el("details", { class: cls || "fold" }, el("summary", { text: summary }), el("pre", { text: body }));
  }

  function resultText(content) {
    if (typeof content === "string") return content;
    if (Array.isArray(content)) {
      return content.map((c) => (c && c.type === "text" ? c.text : json(c))).join("\n");
    }
    return json(content);
  }

  // The rows one stream-json line becomes.
  function lineRows(message) {
    const type = message && message.type;
    if (type === "system" && message.subtype === "init") {
      return [el("p", { class: "meta", text: "session " + (message.session_id || "?") + " · model " + (message.model || "?") })];
    }
    if (type === "assistant" || type === "user") {
      const content = (message.message && message.message.content) || [];
      const rows = [];
      for (const part of Array.isArray(content) ? content : [{ type: "text", text: String(content) }]) {
        if (part.type === "text") {
          rows.push(el("p", { class: type === "assistant" ? "assistant" : "user" }, part.text));
        } else if (part.type === "tool_use") {
          rows.push(folded("tool call: " + part.name, json(part.input), "fold tool-call"));
        } else if (part.type === "tool_result") {
          rows.push(folded((part.is_error ? "tool error" : "tool result") + " (" + (part.tool_use_id || "") + ")", resultText(part.content), "fold tool-result"));
        } else if (part.type === "thinking") {
          rows.push(folded("thinking", part.thinking || "", "fold thinking"));
        } else {
          rows.push(folded(part.type || "part", json(part)));
        }
      }
      return rows;
    }
    if (type === "result") {
      const cost = typeof message.total_cost_usd === "number" ? "$" + message.total_cost_usd.toFixed(4) : "—";
      return [el("div", { class: "result" + (message.is_error ? " failed" : "") },
        el("strong", { text: message.is_error ? "Result (error): " : "Result: " }),
        String(message.result || message.subtype || ""),
        el("span", { class: "meta", text: " · " + (message.num_turns || 0) + " turns · cost " + cost }))];
    }
    if (type === "stream_event") return []; // partial tokens: the full message follows
    return [folded((type || "line") + (message && message.subtype ? "/" + message.subtype : ""), json(message))];
  }

  class Conversation {
    constructor(container) {
      this.container = container;
      this.runs = new Map();
    }

    clear() {
      CF.clear(this.container);
      this.runs.clear();
    }

    run(runId, started) {
      let run = this.runs.get(runId);
      if (run) return run;
      const status = el("span", { class: "badge running", text: "running" });
      const body = el("div", { class: "lines" });
      const node = el("article", { class: "run", "data-run": runId, "aria-live": "polite" },
        el("header", {}, el("h3", { text: "Run " + runId.slice(0, 8) }), status),
        started ? el("p", { class: "prompt" }, el("strong", { text: "Prompt: " }), started.prompt || "") : null,
        body);
      this.container.appendChild(node);
      run = { node: node, body: body, status: status, seen: new Set(), complete: null };
      this.runs.set(runId, run);
      return run;
    }

    // One event (`data` of an ai-response publication). Returns whether it was new.
    add(event) {
      if (!event || !event.runId) return false;
      const key = event.type + ":" + (event.seq || 0);
      const run = this.run(event.runId, event.type === "started" ? event : null);
      if (run.seen.has(key)) return false;
      run.seen.add(key);
      if (event.type === "started") {
        if (!run.node.querySelector(".prompt")) {
          run.node.insertBefore(el("p", { class: "prompt" }, el("strong", { text: "Prompt: " }), event.prompt || ""), run.body);
        }
      } else if (event.type === "output") {
        const line = el("div", { class: "line", "data-seq": event.seq }, lineRows(event.message));
        this.insertInOrder(run.body, line, event.seq);
      } else if (event.type === "error") {
        this.insertInOrder(run.body, el("div", { class: "line error", "data-seq": event.seq }, "Unreadable line " + event.seq + ": " + (event.error || "") + (event.excerpt ? " — " + event.excerpt : "")), event.seq);
      } else if (event.type === "complete") {
        run.complete = event;
        const outcome = event.success ? "complete" : event.aborted ? "aborted" : "failed";
        run.status.textContent = outcome;
        run.status.className = "badge " + outcome;
        const cost = typeof event.costUsd === "number" ? "$" + event.costUsd.toFixed(4) : "—";
        run.node.appendChild(el("footer", { class: "complete" },
          el("strong", { text: outcome === "complete" ? "Complete" : outcome === "aborted" ? "Aborted" : "Failed" }),
          ": " + (event.reason || "") + " · cost " + cost + " · " + ((event.durationMs || 0) / 1000).toFixed(1) + " s · " + (event.lines || 0) + " lines",
          event.writeBack ? el("div", { class: "meta", text: event.writeBack }) : null));
      }
      return true;
    }

    // Lines in their seq order, even if replayed ones arrive after live ones; a run keeps its
    // last MAX_LINES on the page (the message log has them all).
    insertInOrder(body, line, seq) {
      const last = body.lastElementChild;
      if (!last || Number(last.getAttribute("data-seq")) < seq) {
        body.appendChild(line); // the usual case: in order
      } else {
        let before = null;
        for (const child of body.children) {
          if (Number(child.getAttribute("data-seq")) > seq) {
            before = child;
            break;
          }
        }
        body.insertBefore(line, before);
      }
      let dropped = Number(body.getAttribute("data-dropped") || 0);
      while (body.children.length > MAX_LINES) {
        body.removeChild(body.firstElementChild);
        dropped += 1;
      }
      if (dropped) {
        body.setAttribute("data-dropped", String(dropped));
        let note = body.parentNode && body.parentNode.querySelector(".dropped");
        if (!note && body.parentNode) {
          note = el("p", { class: "meta dropped" });
          body.parentNode.insertBefore(note, body);
        }
        if (note) note.textContent = dropped + " earlier lines are not shown here; the run history has them.";
      }
    }
  }

  window.CFConversation = Conversation;
})();
