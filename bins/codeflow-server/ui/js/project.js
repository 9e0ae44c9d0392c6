// A project's page: start a Claude run from a prompt, watch its stream-json as a conversation,
// cancel it, browse the run history from the message log by time, and the project's `files` and
// `diagnostics` channels as live lists.
//
// Nothing on screen is lost to a reload or a network blip: the connection resumes its session
// (or re-subscribes from the last offset), and the tab remembers where each channel's view
// began ({epoch, offset}), so a reloaded page subscribes from there and the server replays what
// it showed.
"use strict";

(function () {
  const el = CF.el;
  const MAX_ROWS = 500;

  function viewKey(project, channel) {
    return "view." + project + "." + channel;
  }

  // Subscribes to `channel`, replaying from where this tab's view of it began.
  async function follow(conn, project, channel, onEvent, onGap) {
    const key = viewKey(project, channel);
    const since = CF.store.get(key);
    const result = await conn.subscribe(channel, since, onEvent, onGap);
    if (!since || !result.recovered) {
      CF.store.set(key, { epoch: result.epoch, offset: result.offset });
      if (since && onGap) onGap({ channel: channel, reload: true });
    }
    return result;
  }

  function runPanel(app, conn, project) {
    const prompt = el("textarea", { id: "prompt", "aria-describedby": "prompt-help" });
    const start = el("button", { type: "submit", id: "start-run", text: "Start run" });
    const cancel = el("button", { type: "button", id: "cancel-run", class: "danger", text: "Cancel run", disabled: true });
    const mayRun = app.may("claude:execute");
    if (!mayRun) {
      start.disabled = true;
      prompt.disabled = true;
    }
    const status = el("p", { id: "run-status", role: "status", class: "meta" });
    const conversation = el("div", { id: "conversation", "aria-label": "Claude runs" });
    const view = new CFConversation(conversation);
    let live = null;

    function setLive(runId) {
      live = runId;
      cancel.disabled = !live || !mayRun;
      start.disabled = !!live || !mayRun;
      cancel.setAttribute("data-run", live || "");
    }

    const form = el("form", { class: "card", onsubmit: async (e) => {
      e.preventDefault();
      const text = prompt.value;
      if (!text.trim()) {
        status.textContent = "Write a prompt first.";
        prompt.focus();
        return;
      }
      start.disabled = true;
      status.textContent = "Starting…";
      try {
        const result = await conn.request("claude/execute", { project: project, prompt: text });
        status.textContent = "Run " + result.runId + " started.";
        setLive(result.runId);
      } catch (err) {
        if (err.data && err.data.runId) setLive(err.data.runId);
        else start.disabled = false;
        status.textContent = "Could not start: " + CF.errorText(err);
      }
    } },
      el("h2", { text: "Claude run" }),
      el("label", { for: "prompt", text: "Prompt" }), prompt,
      el("p", { id: "prompt-help", class: "help", text: mayRun
        ? "Runs the Claude Code CLI in the project (one run at a time; needs claude:execute)."
        : "This token cannot start runs (it lacks claude:execute); runs others start appear below." }),
      el("div", { class: "row" }, start, cancel));

    cancel.addEventListener("click", async () => {
      if (!live) return;
      status.textContent = "Cancelling " + live + "…";
      try {
        await conn.request("claude/cancel", { runId: live });
      } catch (err) {
        status.textContent = "Could not cancel: " + CF.errorText(err);
      }
    });

    function onEvent(pub) {
      const data = pub.data || {};
      if (data.type === "started") {
        // A reload replays from just before the latest run's start.
        CF.store.set(viewKey(project, "ai-response"), { epoch: pub.epoch, offset: pub.offset - 1 });
        setLive(data.runId);
      }
      view.add(data);
      if (data.type === "complete" && data.runId === live) {
        setLive(null);
        status.textContent = "Run " + data.runId + " " + (data.success ? "complete" : "ended: " + data.reason) + ".";
      }
    }
    function onGap(gap) {
      status.textContent = gap.error
        ? "Lost the run channel: " + gap.error
        : "Some run events are no longer in the channel's history; the run history below has them.";
    }
    follow(conn, project, "ai-response", onEvent, onGap).catch((e) => {
      status.textContent = "Cannot watch runs: " + CF.errorText(e);
    });
    return el("div", {}, form, status, conversation);
  }

  function historyPanel(conn, project) {
    const from = el("input", { id: "history-from", type: "datetime-local" });
    const until = el("input", { id: "history-until", type: "datetime-local" });
    const status = el("p", { role: "status", class: "meta", id: "history-status" });
    const list = el("div", { id: "history" });
    const view = new CFConversation(list);
    let before = null;
    const more = el("button", { type: "button", class: "secondary", text: "Older", hidden: true });

    async function load(older) {
      const params = { project: project, limit: 200 };
      if (from.value) params.since = new Date(from.value).getTime() * 1000;
      if (until.value) params.until = new Date(until.value).getTime() * 1000;
      if (older && before) params.before = before;
      else view.clear();
      try {
        const result = await conn.request("projects/history", params);
        const posts = [];
        for (const entry of result.entries) {
          if (entry.kind && entry.kind.startsWith("run.")) view.add(entry.payload);
          else posts.push(entry);
        }
        for (const p of posts) {
          list.appendChild(el("div", { class: "run" }, el("p", { class: "meta", text: CF.time(p.ts / 1000) + " · " + p.kind }), el("pre", { text: JSON.stringify(p.payload, null, 2) })));
        }
        before = result.nextBefore;
        more.hidden = !result.more;
        status.textContent = result.entries.length + " entries" + (result.more ? " (older ones exist)" : "") + ".";
      } catch (e) {
        status.textContent = "Cannot read the history: " + CF.errorText(e);
      }
    }
    more.addEventListener("click", () => load(true));
    return el("section", { class: "card", "aria-labelledby": "history-title" },
      el("h2", { id: "history-title", text: "Run history" }),
      el("form", { class: "row", onsubmit: (e) => { e.preventDefault(); load(false); } },
        el("label", { for: "history-from", text: "From" }), from,
        el("label", { for: "history-until", text: "Until" }), until,
        el("button", { type: "submit", id: "load-history", text: "Show" })),
      el("p", { class: "help", text: "From the project's message log (needs projects:manage)." }),
      status, list, more);
  }

  function filesPanel(conn, project) {
    const list = el("ul", { class: "live-list", id: "files-list", "aria-live": "off" });
    const status = el("p", { class: "meta", role: "status" });
    function onEvent(pub) {
      const d = pub.data || {};
      const when = new Date(pub.timestamp).toLocaleTimeString();
      const text = d.event === "synced"
        ? when + " synced: " + (d.fetched || []).length + " fetched, " + (d.removed || []).length + " removed"
        : when + " " + d.changeType + " " + d.path;
      list.insertBefore(el("li", { "data-offset": pub.offset, text: text }), list.firstChild);
      while (list.children.length > MAX_ROWS) list.removeChild(list.lastChild);
    }
    follow(conn, project, "files", onEvent, () => { status.textContent = "Some file events were missed."; })
      .catch((e) => { status.textContent = "Cannot watch files: " + CF.errorText(e); });
    return el("section", { class: "card", "aria-labelledby": "files-title" }, el("h2", { id: "files-title", text: "Files" }), status, list);
  }

  function diagnosticsPanel(conn, project) {
    const byPath = new Map();
    const list = el("ul", { class: "live-list", id: "diagnostics-list" });
    const status = el("p", { class: "meta", role: "status" });
    function draw() {
      CF.clear(list);
      for (const [path, rows] of byPath) {
        if (!rows.length) continue;
        list.appendChild(el("li", {}, el("strong", { text: path }),
          el("ul", {}, rows.slice(0, 50).map((r) => el("li", { class: "diag-" + r.severity, text: r.line + ":" + r.character + " " + r.severity + ": " + r.message + (r.source ? " (" + r.source + ")" : "") })))));
      }
      if (!list.children.length) list.appendChild(el("li", { class: "meta", text: "No diagnostics." }));
    }
    function onEvent(pub) {
      const d = pub.data || {};
      if (d.path) byPath.set(d.path, d.diagnostics || []);
      draw();
    }
    draw();
    follow(conn, project, "diagnostics", onEvent, () => { status.textContent = "Some diagnostics were missed; they come again with the next change."; })
      .catch((e) => { status.textContent = "Cannot watch diagnostics: " + CF.errorText(e); });
    return el("section", { class: "card", "aria-labelledby": "diag-title" }, el("h2", { id: "diag-title", text: "Diagnostics" }), status, list);
  }

  function render(app, main, params) {
    const project = params[0];
    if (!project) {
      main.appendChild(el("p", { class: "error", text: "No project named." }));
      return null;
    }
    app.title(project);
    const conn = app.connection(project);
    main.appendChild(el("div", { class: "row" },
      el("h1", { text: "Project " + project }),
      el("a", { href: "#/terminal/" + encodeURIComponent(project), text: "Open a terminal" })));
    const refused = el("p", { class: "error", role: "alert", id: "project-error" });
    main.appendChild(refused);
    conn.request("ping", {}).catch((e) => {
      refused.textContent = "This project is not available: " + CF.errorText(e);
    });
    main.appendChild(runPanel(app, conn, project));
    main.appendChild(el("div", { class: "grid" }, filesPanel(conn, project), diagnosticsPanel(conn, project)));
    main.appendChild(historyPanel(conn, project));
    // The connection (and its subscriptions) stays for when the page is opened again.
    return () => {
      conn.channels.clear();
      for (const channel of ["ai-response", "files", "diagnostics"]) {
        conn.request("channels/unsubscribe", { channel: channel }).catch(() => {});
      }
    };
  }

  window.CFPages = window.CFPages || {};
  window.CFPages.project = render;
})();
