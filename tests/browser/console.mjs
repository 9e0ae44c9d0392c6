// The web console in a real headless browser (Debian's Chromium, driven by playwright-core over
// CDP). Run by tests/e2e/console.rs, which starts the server, a relay and the mock `claude`, and
// passes what it set up in the environment:
//
//   CONSOLE_URL   http://127.0.0.1:PORT/ui
//   TOKEN_A       a token for project PROJECT_A only (every right)
//   PROJECT_A     the project the console works on (a relay streams it; pylsp runs for it)
//   PROJECT_B     another project, which TOKEN_A must not reveal
//   PROJECT_T     a server-side project (projects/create) TOKEN_A also names: terminals open in
//                 a project's directory, not in a streamed project's mirror
//   PROJECT_NEW   a project TOKEN_A names that does not exist yet: created and deleted on the
//                 projects page
//   TOKEN_READ    a token for PROJECT_A with file:read only
//   SHOTS_DIR     where the screenshots of each page go
//   CHROMIUM      the browser (default /usr/bin/chromium)
//
// Each step prints one line; any failed expectation ends the script with status 1 and says why.
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const url = env("CONSOLE_URL");
const tokenA = env("TOKEN_A");
const projectA = env("PROJECT_A");
const projectB = env("PROJECT_B");
const projectT = env("PROJECT_T");
const projectNew = env("PROJECT_NEW");
const tokenRead = env("TOKEN_READ");
const shots = env("SHOTS_DIR");
const STEP_MS = 30000;

function expect(condition, message) {
  if (!condition) throw new Error("expectation failed: " + message);
}
function step(text) {
  console.log("step: " + text);
}

// The seq numbers and texts of one run's lines, in page order.
async function runLines(page, runId) {
  return page.$$eval(`article.run[data-run="${runId}"] .line`, (lines) =>
    lines.map((l) => ({ seq: Number(l.getAttribute("data-seq")), text: l.textContent })));
}

async function latestRunId(page) {
  return page.$eval("#conversation article.run:last-of-type", (a) => a.getAttribute("data-run"));
}

async function waitRunOutcome(page, runId, outcome) {
  await page.waitForSelector(`article.run[data-run="${runId}"] .badge.${outcome}`, { timeout: STEP_MS });
}

async function startRun(page, prompt) {
  await page.fill("#prompt", prompt);
  await page.click("#start-run");
  await page.waitForFunction(() => document.querySelector("#cancel-run").getAttribute("data-run"), null, { timeout: STEP_MS });
  return page.$eval("#cancel-run", (b) => b.getAttribute("data-run"));
}

function expectInOrder(lines, count, what) {
  const seqs = lines.map((l) => l.seq);
  const wanted = Array.from({ length: count }, (_, i) => i + 1);
  expect(JSON.stringify(seqs) === JSON.stringify(wanted), `${what}: lines ${JSON.stringify(seqs)}, wanted 1..${count} once each, in order`);
}

const profile = mkdtempSync(join(tmpdir(), "codeflow-console-chromium-"));
// A fresh profile (the user-data dir) every run.
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
let failed = false;
const consoleErrors = [];
try {
  mkdirSync(shots, { recursive: true });
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });

  step("sign in with the token of project " + projectA);
  await page.goto(url);
  await page.waitForSelector("#token");
  expect(await page.evaluate(() => document.activeElement && document.activeElement.id === "token"), "the token field has the focus");
  await page.fill("#token", tokenA);
  await page.keyboard.press("Enter");

  step("the projects page shows the project and its language server");
  await page.waitForSelector(`[data-project="${projectA}"]`, { timeout: STEP_MS });
  await page.waitForFunction((p) => {
    const pid = document.querySelector(`[data-project="${p}"] table.language-servers td.pid`);
    return pid && /^\d+$/.test(pid.textContent);
  }, projectA, { timeout: STEP_MS });
  const server = await page.$eval(`[data-project="${projectA}"] table.language-servers tbody tr`, (r) => r.textContent);
  expect(/pylsp/.test(server), "the language server row names pylsp: " + server);
  expect(/running/.test(server), "the language server is running: " + server);
  const mirror = await page.$eval(`[data-project="${projectA}"] .mirror`, (m) => m.textContent);
  expect(/Last sync/.test(mirror), "the mirror's last sync is shown: " + mirror);
  const body = await page.textContent("body");
  expect(!body.includes(projectB), `the projects page says nothing of ${projectB}`);
  await page.screenshot({ path: join(shots, "projects.png"), fullPage: true });

  step("open the project with the keyboard");
  await page.focus(`[data-project="${projectA}"] a.open-project`);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#prompt");

  step("a run of the mock claude: its lines appear in order, then its complete");
  // It also edits two files: the write-back reaches the relay's tree, whose watcher sends the
  // changes back, so the files channel and (app.py, now not Python) the diagnostics show them.
  const run1 = await startRun(page, "say hello mock:lines=5 mock:slow=50 mock:no-record mock:edit=notes.txt,app.py");
  await waitRunOutcome(page, run1, "complete");
  const lines1 = await runLines(page, run1);
  expectInOrder(lines1, 11, "first run"); // system/init, 5 assistant lines, 2 edits and their results, result
  for (let i = 1; i <= 5; i++) {
    expect(lines1[i].text.includes(`line ${i} of 5`), `line ${i + 1} is the assistant's line ${i}: ${lines1[i].text}`);
  }
  expect(/tool call: Write/.test(lines1[6].text), "a tool call, folded: " + lines1[6].text);
  expect(/tool result/.test(lines1[7].text), "its result, folded: " + lines1[7].text);
  expect(await page.$$eval(`article.run[data-run="${run1}"] details.tool-call[open]`, (d) => d.length) === 0, "tool calls are folded");
  expect(/Result:/.test(lines1[10].text) && /cost \$0\.0123/.test(lines1[10].text), "the result line shows the cost: " + lines1[10].text);
  const footer = await page.$eval(`article.run[data-run="${run1}"] footer.complete`, (f) => f.textContent);
  expect(/Complete: completed/.test(footer), "the complete footer: " + footer);

  step("cancel a run");
  const run2 = await startRun(page, "wait forever mock:hang mock:no-record");
  await page.waitForSelector(`article.run[data-run="${run2}"] .line[data-seq="1"]`, { timeout: STEP_MS });
  await page.click("#cancel-run");
  await waitRunOutcome(page, run2, "aborted");
  const cancelled = await page.$eval(`article.run[data-run="${run2}"] footer.complete`, (f) => f.textContent);
  expect(/cancelled/.test(cancelled), "the aborted run says cancelled: " + cancelled);

  step("reload in the middle of a run: nothing is lost");
  const run3 = await startRun(page, "count slowly mock:lines=12 mock:slow=200 mock:no-record");
  await page.waitForSelector(`article.run[data-run="${run3}"] .line[data-seq="4"]`, { timeout: STEP_MS });
  const before = await runLines(page, run3);
  expect(before.length < 14, "the reload happens mid-run (" + before.length + " lines so far)");
  await page.reload();
  await page.waitForSelector(`article.run[data-run="${run3}"]`, { timeout: STEP_MS });
  await waitRunOutcome(page, run3, "complete");
  expectInOrder(await runLines(page, run3), 14, "the reloaded run");
  expect(await latestRunId(page) === run3, "the reloaded page shows the run");

  step("the run history from the message log");
  await page.click("#load-history");
  await page.waitForSelector(`#history article.run[data-run="${run1}"] footer.complete`, { timeout: STEP_MS });
  await page.waitForSelector(`#history article.run[data-run="${run2}"] .badge.aborted`, { timeout: STEP_MS });
  expectInOrder(await page.$$eval(`#history article.run[data-run="${run1}"] .line`, (ls) => ls.map((l) => ({ seq: Number(l.getAttribute("data-seq")) }))), 11, "the first run in the history");
  // A time filter that ends before the runs shows none of them.
  await page.fill("#history-until", "2001-01-01T00:00");
  await page.click("#load-history");
  await page.waitForFunction(() => /^0 entries/.test(document.querySelector("#history-status").textContent), null, { timeout: STEP_MS });
  await page.fill("#history-until", "");
  await page.click("#load-history");
  await page.waitForSelector(`#history article.run[data-run="${run1}"]`, { timeout: STEP_MS });
  step("the files and diagnostics channels as live lists");
  await page.waitForFunction(() => /notes\.txt/.test(document.querySelector("#files-list").textContent), null, { timeout: STEP_MS });
  await page.waitForFunction(() => /app\.py/.test(document.querySelector("#diagnostics-list").textContent), null, { timeout: STEP_MS });

  step("a network blip in the middle of a run: the console reconnects and loses nothing");
  const run4 = await startRun(page, "through a blip mock:lines=10 mock:slow=200 mock:no-record");
  await page.waitForSelector(`article.run[data-run="${run4}"] .line[data-seq="3"]`, { timeout: STEP_MS });
  const drops = Number(await page.getAttribute("#connection", "data-drops"));
  console.log("blip: sever the connections");
  await page.waitForFunction((n) => Number(document.querySelector("#connection").getAttribute("data-drops")) > n, drops, { timeout: STEP_MS });
  await waitRunOutcome(page, run4, "complete");
  expectInOrder(await runLines(page, run4), 12, "the run through the blip");
  await page.waitForSelector('#connection[data-state="up"]', { timeout: STEP_MS });
  await page.screenshot({ path: join(shots, "project.png"), fullPage: true });

  step(`a token for ${projectA} shows nothing of ${projectB}`);
  await page.goto(url + "#/project/" + projectB);
  await page.waitForFunction(() => /not available/.test(document.querySelector("#project-error").textContent), null, { timeout: STEP_MS });
  const refusal = await page.textContent("#project-error");
  expect(/does not grant project/.test(refusal), "the refusal says why: " + refusal);
  expect((await page.$$("#conversation article.run")).length === 0, `no run of ${projectB} is shown`);

  step("a terminal");
  await page.goto(url + "#/terminal/" + projectT);
  try {
    await page.waitForFunction(() => {
      const box = document.querySelector("#terminal");
      return box && (box.getAttribute("data-attached") || box.getAttribute("data-unavailable"));
    }, null, { timeout: STEP_MS });
  } catch (e) {
    // Only a server without terminals (-32601) skips this step; any other failure fails it.
    throw new Error("the terminal did not open: " + (await page.textContent("#terminal-status")));
  }
  if (await page.$("#terminal[data-unavailable]")) {
    console.log("SKIP terminal: the server answers terminals/create with -32601 (method not found): /ws/terminal is not in this build");
  } else {
    await page.keyboard.type("echo console-$((6*7))\n");
    const screenText = () => page.$eval("#terminal .xterm-rows", (r) => r.textContent);
    await page.waitForFunction(() => /console-42/.test(document.querySelector("#terminal .xterm-rows").textContent), null, { timeout: STEP_MS });
    const id = await page.$eval("#terminal", (b) => b.getAttribute("data-terminal"));
    step("the terminal follows the window's size");
    const before = await page.evaluate(() => [window.CFTerminal.rows, window.CFTerminal.cols]);
    await page.setViewportSize({ width: 900, height: 700 });
    await page.waitForFunction((b) => window.CFTerminal.cols !== b[1], before, { timeout: STEP_MS });
    await page.keyboard.type("stty size\n");
    try {
      // The shell's own idea of its size is the page's (rows and columns of the widget).
      await page.waitForFunction(() => {
        const t = window.CFTerminal;
        return document.querySelector("#terminal .xterm-rows").textContent.includes(t.rows + " " + t.cols);
      }, null, { timeout: STEP_MS });
    } catch (e) {
      throw new Error("stty size did not print the widget's size: " + (await screenText()) + " / widget " + JSON.stringify(await page.evaluate(() => [window.CFTerminal.rows, window.CFTerminal.cols])));
    }
    step("F6 leaves the terminal (Tab belongs to the shell)");
    await page.keyboard.press("F6");
    expect(await page.evaluate(() => document.activeElement && document.activeElement.textContent === "Send Ctrl-C"), "F6 moved the focus out of the terminal");
    step("reattach after a reload: same terminal, its scrollback first");
    await page.reload();
    await page.waitForSelector("#terminal[data-attached]", { timeout: STEP_MS });
    expect(await page.$eval("#terminal", (b) => b.getAttribute("data-terminal")) === id, "the same terminal after the reload");
    await page.waitForFunction(() => /console-42/.test(document.querySelector("#terminal .xterm-rows").textContent), null, { timeout: STEP_MS });
    expect(/console-42/.test(await screenText()), "the scrollback is back");
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.screenshot({ path: join(shots, "terminal.png") });
  }

  step("the service page: uptime, connections and live figures");
  await page.goto(url + "#/service");
  await page.waitForFunction(() => Number(document.querySelector("#figures")?.getAttribute("data-samples")) >= 3, null, { timeout: STEP_MS });
  const connections = await page.$eval('[data-figure="connections"] .value', (v) => v.textContent);
  expect(Number(connections) >= 1, "connections: " + connections);
  const uptime = await page.$eval('[data-figure="uptime"] .value', (v) => v.textContent);
  expect(/\d+[smhd]/.test(uptime), "uptime: " + uptime);
  await page.screenshot({ path: join(shots, "service.png"), fullPage: true });

  step("create and delete a project on the projects page");
  await page.goto(url + "#/projects");
  await page.waitForSelector(`[data-project="${projectA}"]`, { timeout: STEP_MS });
  await page.fill("#new-project", projectNew);
  await page.click("#create-project");
  const deleteButton = `[data-project="${projectNew}"] button.danger`;
  await page.waitForSelector(deleteButton, { timeout: STEP_MS });
  page.once("dialog", (dialog) => dialog.accept());
  await page.click(deleteButton);
  await page.waitForFunction((p) => /Deleted/.test(document.querySelector("#projects-status").textContent) && !document.querySelector(`[data-project="${p}"] button.danger`), projectNew, { timeout: STEP_MS });
  // A project the token does not name: refused, with the server's reason.
  await page.fill("#new-project", projectB + "-x");
  await page.click("#create-project");
  await page.waitForFunction(() => /Could not create .*does not grant/.test(document.querySelector("#projects-status").textContent), null, { timeout: STEP_MS });

  step("readable at 200 % zoom: the projects and project pages fit the width; focus is visible");
  await page.setViewportSize({ width: 640, height: 900 }); // 1280 px at 200 %
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow <= 0, "no horizontal scrolling at 200 % (" + overflow + " px too wide)");
  await page.goto(url + "#/project/" + projectA);
  await page.waitForSelector(`#conversation article.run`, { timeout: STEP_MS });
  await page.click("#load-history");
  await page.waitForSelector(`#history article.run`, { timeout: STEP_MS });
  const projectOverflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(projectOverflow <= 0, "the project page needs no horizontal scrolling at 200 % (" + projectOverflow + " px too wide)");
  // Focus is visible: the focused control gets an outline.
  await page.focus("#load-history");
  await page.keyboard.press("Shift+Tab");
  await page.keyboard.press("Tab");
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  expect(outline !== "none", "the focused control has a visible outline (" + outline + ")");

  step("sign out, and in with a read-only token: what it may not do is not offered");
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.click("#logout");
  await page.waitForSelector("#token");
  await page.fill("#token", tokenRead);
  await page.keyboard.press("Enter");
  await page.goto(url + "#/projects");
  await page.waitForSelector(`[data-project="${projectA}"]`, { timeout: STEP_MS });
  expect(!(await page.$("#create-project")), "no create form without projects:manage");
  expect(!(await page.$(`[data-project="${projectA}"] button.danger`)), "no delete button without projects:manage");
  await page.goto(url + "#/project/" + projectA);
  await page.waitForSelector("#prompt");
  expect(await page.$eval("#start-run", (b) => b.disabled), "no run without claude:execute");
  expect(/cannot start runs/.test(await page.textContent("#prompt-help")), "the page says why");

  const unexpected = consoleErrors.filter((e) => !/WebSocket|ERR_|status of 4\d\d/.test(e));
  expect(unexpected.length === 0, "no script errors: " + unexpected.join(" | "));
  console.log("ok: every step passed");
} catch (e) {
  failed = true;
  console.error(String(e && e.stack ? e.stack : e));
  console.error("console errors: " + consoleErrors.join(" | "));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
