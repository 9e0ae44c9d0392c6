// The console's shell: the token (pasted once, kept for this tab), one connection per project,
// the navigation and the page router (#/projects, #/project/ID, #/terminal/ID, #/service).
"use strict";

(function () {
  const el = CF.el;
  const main = document.getElementById("main");
  const nav = document.getElementById("nav");
  const stateBox = document.getElementById("connection");
  const connections = new Map();
  let cleanup = null;
  let drops = 0; // connections lost so far (shown to tests as data-drops)

  const app = {
    main: main,
    token() {
      return CF.store.get("token") || "";
    },
    // The projects this token names ("*" for all; null when the token says nothing readable).
    tokenProjects() {
      return CF.tokenProjects(app.token());
    },
    // Whether the token grants `right` (false only when its claims say it does not).
    may(right) {
      return CF.tokenHas(app.token(), right) !== false;
    },
    // The project the console's own session is opened on (for the server-wide views).
    homeProject() {
      const chosen = CF.store.get("home");
      if (chosen) return chosen;
      const named = app.tokenProjects();
      return Array.isArray(named) && named.length ? named[0] : "console";
    },
    connection(project) {
      let conn = connections.get(project);
      if (!conn || conn.state === "refused") {
        conn = new CodeFlowRpc.Connection({
          project: project,
          token: app.token(),
          onState: (state) => {
            if (state === "down") drops += 1;
            showState();
          },
          onRefused: (why) => {
            if (project === app.homeProject()) logout("The server refused the token: " + why);
          },
        });
        connections.set(project, conn);
      }
      return conn;
    },
    navigate(hash) {
      if (location.hash === hash) route();
      else location.hash = hash;
    },
    title(text) {
      document.title = text + " · CodeFlow console";
    },
  };

  function showState() {
    const states = Array.from(connections.values());
    const down = states.filter((c) => c.state === "down" || c.state === "connecting");
    const refused = states.filter((c) => c.state === "refused");
    let text = "connected", cls = "up";
    if (refused.length) {
      text = "refused: " + refused[0].lastError;
      cls = "refused";
    } else if (down.length) {
      text = down[0].state === "connecting" ? "connecting…" : "reconnecting: " + down[0].lastError;
      cls = "down";
    } else if (!states.length) {
      text = "";
    }
    stateBox.textContent = text;
    stateBox.className = "state " + cls;
    stateBox.setAttribute("data-state", cls);
    stateBox.setAttribute("data-drops", String(drops));
  }

  function closeAll() {
    for (const c of connections.values()) c.close();
    connections.clear();
  }

  function logout(message) {
    closeAll();
    CF.store.set("token", null);
    CF.store.set("home", null);
    showLogin(message);
  }

  function showLogin(message) {
    nav.hidden = true;
    app.title("Sign in");
    CF.clear(main);
    const token = el("input", { id: "token", type: "password", autocomplete: "off", spellcheck: "false", "aria-describedby": "token-help" });
    const project = el("input", { id: "home-project", type: "text", autocomplete: "off", spellcheck: "false", placeholder: "from the token", "aria-describedby": "project-help" });
    const form = el("form", { class: "card login", onsubmit: (e) => {
      e.preventDefault();
      CF.store.set("token", token.value.trim());
      CF.store.set("home", project.value.trim() || null);
      start();
    } },
      el("h1", { text: "CodeFlow console" }),
      message ? el("p", { class: "error", role: "alert", text: message }) : null,
      el("label", { for: "token", text: "Token" }), token,
      el("p", { id: "token-help", class: "help", text: "A CodeFlow token (codeflow-server token …). It is kept for this tab only and sent only to this server." }),
      el("label", { for: "home-project", text: "Project (optional)" }), project,
      el("p", { id: "project-help", class: "help", text: "The project the console's own session opens on; by default the token's first project." }),
      el("button", { type: "submit", id: "sign-in", text: "Sign in" }));
    main.appendChild(form);
    token.focus();
  }

  function start() {
    nav.hidden = false;
    if (!location.hash || location.hash === "#" || location.hash === "#/") location.hash = "#/projects";
    else route();
  }

  function route() {
    if (!CF.store.get("token") && CF.store.get("token") !== "") {
      showLogin();
      return;
    }
    if (cleanup) {
      try {
        cleanup();
      } catch (e) {
        /* a page that failed to clean up must not block the next */
      }
      cleanup = null;
    }
    CF.clear(main);
    const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    const page = parts[0] || "projects";
    for (const link of nav.querySelectorAll("a[data-page]")) {
      if (link.getAttribute("data-page") === page) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    const render = (window.CFPages || {})[page];
    if (!render) {
      main.appendChild(el("p", { class: "error", text: "No such page: " + page }));
      return;
    }
    cleanup = render(app, main, parts.slice(1)) || null;
    main.focus({ preventScroll: true });
    showState();
  }

  document.getElementById("logout").addEventListener("click", () => logout());
  window.addEventListener("hashchange", route);
  window.CFApp = app;
  if (CF.store.get("token") === null) showLogin();
  else start();
})();
