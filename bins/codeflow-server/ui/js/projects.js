// The projects page: every project the token may see (status/projects), with its sessions,
// language servers, mirror sync state and Claude-run status; create and delete where the token
// allows (projects/create, projects/delete need projects:manage).
"use strict";

(function () {
  const el = CF.el;
  const REFRESH_MS = 3000;

  function badge(text) {
    return el("span", { class: "badge " + text, text: text });
  }

  function sessionsTable(sessions) {
    if (!sessions.length) return el("p", { class: "meta", text: "No sessions." });
    return el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ["Session", "Root", "Files", "Connection", "Age"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, sessions.map((s) => el("tr", {},
        el("td", { text: s.id + (s.you ? " (this console)" : "") }),
        el("td", { text: s.root }),
        el("td", { text: s.fileStream ? "streams files" : "—" }),
        el("td", {}, s.attached ? badge("connected") : el("span", {}, badge("detached"), " " + CF.duration(s.detachedSecs))),
        el("td", { text: CF.duration(s.ageSecs) }))))));
  }

  function serversTable(servers) {
    if (!servers.length) return el("p", { class: "meta", text: "No language servers (they start on first use)." });
    return el("div", { class: "table-wrap" }, el("table", { class: "language-servers" },
      el("thead", {}, el("tr", {}, ["Server", "State", "PID", "Restarts", "Memory", "Up", "Documents"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, servers.map((s) => el("tr", { "data-server": s.server },
        el("td", { text: s.server + " (" + s.language + ")" }),
        el("td", {}, badge(s.state), s.indexing ? " indexing" : "", s.lastError ? el("div", { class: "meta error", text: s.lastError }) : null),
        el("td", { class: "pid", text: s.pid === null ? "—" : s.pid }),
        el("td", { text: s.restarts + (s.crashes ? " (" + s.crashes + " crashes)" : "") }),
        el("td", { text: CF.bytes(s.memoryBytes) }),
        el("td", { text: CF.duration(s.uptimeSecs) }),
        el("td", { text: s.openDocuments }))))));
  }

  function mirrorText(mirror) {
    if (!mirror) return "Mirror not open (no session has used it since the server started).";
    const sync = mirror.sync || {};
    let text = mirror.files + (mirror.files === 1 ? " file" : " files") + (mirror.shared ? " (shared directory)" : "") + ". ";
    if (sync.syncing) text += "Syncing: " + sync.pendingFiles + " files to fetch. ";
    if (sync.last) {
      const s = sync.last.summary || {};
      text += sync.last.ok
        ? "Last sync " + CF.time(sync.last.at) + ": " + s.fetched + " fetched, " + s.removed + " removed, " + s.unchanged + " unchanged."
        : "Last sync failed " + CF.time(sync.last.at) + ": " + sync.last.error;
    } else {
      text += "No sync since the server started.";
    }
    if (sync.lastRefused) text += " Last refused sync " + CF.time(sync.lastRefused.at) + ": " + sync.lastRefused.message;
    return text;
  }

  function projectCard(app, p, refresh, status) {
    const managed = p.managed;
    const actions = el("div", { class: "row" },
      el("a", { href: "#/project/" + encodeURIComponent(p.id), class: "open-project", text: "Open project" }),
      " · ",
      el("a", { href: "#/terminal/" + encodeURIComponent(p.id), text: "Terminal" }));
    if (managed && app.may("projects:manage")) {
      actions.appendChild(el("button", { type: "button", class: "danger", "aria-label": "Delete project " + p.id, text: "Delete", onclick: async () => {
        if (!confirm("Forget project " + p.id + "? Its directory stays.")) return;
        try {
          await app.connection(app.homeProject()).request("projects/delete", { project: p.id });
          status.textContent = "Deleted " + p.id + ".";
          status.focus(); // the button is about to go
          refresh();
        } catch (e) {
          status.textContent = "Could not delete " + p.id + ": " + CF.errorText(e);
        }
      } }));
    }
    return el("section", { class: "card project-card", "data-project": p.id, "aria-labelledby": "p-" + p.id },
      el("header", {}, el("div", { class: "row" }, el("h2", { id: "p-" + p.id, text: p.id }), badge(p.status)), actions),
      managed ? el("p", { class: "meta", text: (managed.streamed ? "Streamed project" : "Server-side project") + " · " + managed.runs + " runs" + (managed.currentRun ? " · running " + managed.currentRun : "") + (managed.lastError ? " · last error: " + managed.lastError : "") }) : null,
      el("h3", { text: "Sessions" }), sessionsTable(p.sessions),
      el("h3", { text: "Language servers" }), serversTable(p.languageServers),
      el("h3", { text: "Mirror" }), el("p", { class: "mirror", text: mirrorText(p.mirror) }));
  }

  function createForm(app, refresh, status) {
    const id = el("input", { id: "new-project", type: "text", required: true, pattern: "[A-Za-z0-9._\\-]{1,64}", autocomplete: "off" });
    const streamed = el("input", { id: "new-streamed", type: "checkbox" });
    return el("form", { class: "card", onsubmit: async (e) => {
      e.preventDefault();
      const params = { id: id.value.trim() };
      if (streamed.checked) params.streamed = true;
      try {
        await app.connection(app.homeProject()).request("projects/create", params);
        status.textContent = "Created " + params.id + ".";
        id.value = "";
        refresh();
      } catch (err) {
        status.textContent = "Could not create " + params.id + ": " + CF.errorText(err);
      }
    } },
      el("h2", { text: "New project" }),
      el("div", { class: "row" },
        el("label", { for: "new-project", text: "Id" }), id,
        el("label", { for: "new-streamed" }, streamed, " streamed from a relay"),
        el("button", { type: "submit", id: "create-project", text: "Create" })),
      el("p", { class: "help", text: "Needs the projects:manage right." }));
  }

  function render(app, main) {
    app.title("Projects");
    const status = el("p", { id: "projects-status", role: "status", class: "meta", tabindex: "-1" });
    const list = el("div", { id: "project-list", "aria-busy": "true" });
    let timer = null, stopped = false;
    // `fromTimer`: the periodic refresh, which waits while the keyboard is in the list.
    async function refresh(fromTimer) {
      clearTimeout(timer);
      if (fromTimer === true && list.contains(document.activeElement) && list.getAttribute("data-loaded")) {
        // Someone is using the keyboard in the list: do not pull the focused element away.
        if (!stopped) timer = setTimeout(() => refresh(true), REFRESH_MS);
        return;
      }
      try {
        const result = await app.connection(app.homeProject()).request("status/projects", {});
        CF.clear(list);
        if (!result.projects.length) list.appendChild(el("p", { text: "This token sees no projects." }));
        for (const p of result.projects) list.appendChild(projectCard(app, p, refresh, status));
        list.setAttribute("aria-busy", "false");
        list.setAttribute("data-loaded", "true");
      } catch (e) {
        status.textContent = "Could not list projects: " + CF.errorText(e);
      }
      if (!stopped) timer = setTimeout(() => refresh(true), REFRESH_MS);
    }
    main.appendChild(el("div", { class: "row" }, el("h1", { text: "Projects" }),
      el("button", { type: "button", class: "secondary", text: "Refresh", onclick: () => refresh() })));
    main.appendChild(status);
    main.appendChild(list);
    if (app.may("projects:manage")) main.appendChild(createForm(app, refresh, status));
    else main.appendChild(el("p", { class: "help", text: "This token cannot create or delete projects (it lacks projects:manage)." }));
    refresh();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  window.CFPages = window.CFPages || {};
  window.CFPages.projects = render;
})();
