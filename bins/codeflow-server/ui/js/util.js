// Small helpers shared by the pages: building elements, formatting, the tab's storage.
"use strict";

(function () {
  // el("div", {class: "x", onclick: f}, child, "text", …): an element; text is never parsed
  // as HTML (everything shown comes from the network).
  function el(tag, attrs) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (let i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) child.forEach((c) => append(node, c));
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function bytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }

  function duration(secs) {
    if (secs === null || secs === undefined) return "—";
    secs = Math.floor(secs);
    const d = Math.floor(secs / 86400), h = Math.floor((secs % 86400) / 3600);
    const m = Math.floor((secs % 3600) / 60), s = secs % 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + s + "s";
    return s + "s";
  }

  function time(ms) {
    if (!ms) return "—";
    return new Date(ms).toLocaleString();
  }

  // The claims of a JWT, read without checking it (the server checks it): which projects to
  // offer. Null when the token is not a readable JWT.
  function tokenClaims(token) {
    try {
      const part = token.split(".")[1];
      const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
      return JSON.parse(json);
    } catch (e) {
      return null;
    }
  }

  // The projects a token names: an array, "*" for every project, or null when unknown.
  function tokenProjects(token) {
    const claims = tokenClaims(token || "");
    if (!claims) return null;
    if (claims.projects === "*") return "*";
    if (Array.isArray(claims.projects)) return claims.projects.filter((p) => typeof p === "string");
    if (typeof claims.projectId === "string") return [claims.projectId];
    return null;
  }

  // Whether a token grants `right` as far as its claims tell (the server decides): true, false,
  // or null when the token is not a readable JWT (no token, another credential).
  function tokenHas(token, right) {
    const claims = tokenClaims(token || "");
    if (!claims) return null;
    let rights;
    if (typeof claims.scope === "string") rights = claims.scope.split(/\s+/);
    else if (Array.isArray(claims.permissions)) rights = claims.permissions;
    else rights = ["file:read", "lsp:query"]; // a token naming no rights
    return rights.includes(right);
  }

  // The tab's storage (sessionStorage: kept for this tab only, gone when it closes).
  const store = {
    get(key) {
      try {
        const v = sessionStorage.getItem("codeflow." + key);
        return v === null ? null : JSON.parse(v);
      } catch (e) {
        return null;
      }
    },
    set(key, value) {
      try {
        if (value === null || value === undefined) sessionStorage.removeItem("codeflow." + key);
        else sessionStorage.setItem("codeflow." + key, JSON.stringify(value));
      } catch (e) {
        /* storage full or disabled: the console still works, a reload forgets more */
      }
    },
  };

  function errorText(e) {
    if (!e) return "";
    let text = e.message || String(e);
    if (e.data && e.data.suggestion) text += " — " + e.data.suggestion;
    return text;
  }

  window.CF = { el: el, clear: clear, bytes: bytes, duration: duration, time: time, tokenClaims: tokenClaims, tokenProjects: tokenProjects, tokenHas: tokenHas, store: store, errorText: errorText };
})();
