// The terminal page: a shell in the project on /ws/terminal/{id} (docs/protocol.md,
// "Terminals"), shown in xterm.js. Binary frames carry the bytes both ways; text frames carry
// resize and signal (ours) and exit (the server's). The terminal's id is kept for this tab, so
// a reload attaches to the same shell again (terminals/attach) and gets its scrollback first.
"use strict";

(function () {
  const el = CF.el;

  function render(app, main, params) {
    const project = params[0];
    if (!project) {
      main.appendChild(el("p", { class: "error", text: "No project named." }));
      return null;
    }
    app.title("Terminal · " + project);
    const conn = app.connection(project);
    const key = "terminal." + project;
    const status = el("p", { id: "terminal-status", role: "status", class: "meta", text: "Opening a terminal…" });
    const help = el("p", { class: "help", text: "Tab goes to the shell; F6 leaves the terminal." });
    const box = el("div", { class: "terminal-box", id: "terminal" });
    const interrupt = el("button", { type: "button", class: "secondary", text: "Send Ctrl-C", disabled: true });
    const closeButton = el("button", { type: "button", class: "danger", text: "Close terminal", disabled: true });
    main.appendChild(el("div", { class: "row" }, el("h1", { text: "Terminal in " + project }),
      el("a", { href: "#/project/" + encodeURIComponent(project), text: "Back to the project" })));
    main.appendChild(status);
    main.appendChild(help);
    main.appendChild(el("div", { class: "row" }, interrupt, closeButton));
    main.appendChild(box);

    const term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000, convertEol: false });
    const fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(box);
    fit.fit();
    window.CFTerminal = term; // for the browser tests and the curious

    const encoder = new TextEncoder();
    let socket = null, id = null, stopped = false, exited = false, attempt = 0, timer = null;

    function sendControl(message) {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    }

    // Tab belongs to the shell (completion); F6 leaves the terminal for the page's controls.
    term.attachCustomKeyEventHandler((event) => {
      if (event.key === "F6") {
        if (event.type === "keydown") interrupt.focus();
        return false;
      }
      return true;
    });
    term.onData((data) => {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
    });
    term.onResize((size) => sendControl({ type: "resize", cols: size.cols, rows: size.rows }));
    const onWindowResize = () => fit.fit();
    window.addEventListener("resize", onWindowResize);

    function connect(ticket) {
      const ws = new WebSocket(CodeFlowRpc.socketUrl(ticket.url));
      ws.binaryType = "arraybuffer";
      socket = ws;
      ws.onopen = () => {
        attempt = 0;
        status.textContent = "Terminal " + id + " attached.";
        box.setAttribute("data-attached", "true");
        interrupt.disabled = false;
        closeButton.disabled = false;
        sendControl({ type: "resize", cols: term.cols, rows: term.rows });
        term.focus();
      };
      ws.onmessage = (event) => {
        if (typeof event.data === "string") {
          let message = null;
          try {
            message = JSON.parse(event.data);
          } catch (e) {
            return;
          }
          if (message.type === "exit") {
            exited = true;
            CF.store.set(key, null);
            status.textContent = "The shell exited with code " + message.code + ".";
            box.setAttribute("data-exit", String(message.code));
          }
          return;
        }
        term.write(new Uint8Array(event.data));
      };
      ws.onclose = (event) => {
        if (socket !== ws) return;
        box.removeAttribute("data-attached");
        interrupt.disabled = true;
        if (stopped || exited) return;
        const delay = CodeFlowRpc.backoffDelay(attempt++);
        status.textContent = "Terminal connection lost (" + (event.reason || event.code) + "); reattaching in " + (delay / 1000).toFixed(1) + " s.";
        timer = setTimeout(() => open(true), delay);
      };
    }

    async function open(reattach) {
      const saved = CF.store.get(key);
      try {
        let ticket = null;
        if (saved) {
          try {
            ticket = await conn.request("terminals/attach", { id: saved });
          } catch (e) {
            if (e.code === -32601) throw e;
            CF.store.set(key, null); // gone (closed, or past its grace): start another
          }
        }
        if (!ticket) {
          if (reattach) term.write("\r\n[the terminal ended; a new one starts]\r\n");
          ticket = await conn.request("terminals/create", { project: project, cols: term.cols, rows: term.rows });
        }
        if (stopped) return;
        id = ticket.id;
        CF.store.set(key, id);
        box.setAttribute("data-terminal", id);
        connect(ticket);
      } catch (e) {
        if (e.code === -32601) {
          box.setAttribute("data-unavailable", "true");
          status.textContent = "This server has no terminals (terminals/create is not implemented).";
        } else {
          status.textContent = "Cannot open a terminal: " + CF.errorText(e);
        }
      }
    }

    interrupt.addEventListener("click", () => {
      sendControl({ type: "signal", name: "SIGINT" });
      term.focus();
    });
    closeButton.addEventListener("click", async () => {
      if (!id) return;
      stopped = true;
      try {
        await conn.request("terminals/close", { id: id });
        status.textContent = "Terminal " + id + " closed.";
      } catch (e) {
        status.textContent = "Could not close: " + CF.errorText(e);
      }
      CF.store.set(key, null);
      closeButton.disabled = true;
      if (socket) socket.close(1000);
    });

    open(false);
    return () => {
      stopped = true;
      clearTimeout(timer);
      window.removeEventListener("resize", onWindowResize);
      if (socket) socket.close(1000, "page left");
      term.dispose();
      if (window.CFTerminal === term) window.CFTerminal = null;
    };
  }

  window.CFPages = window.CFPages || {};
  window.CFPages.terminal = render;
})();
