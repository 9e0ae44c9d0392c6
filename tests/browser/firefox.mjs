// The web console in Firefox (Debian's firefox-esr, headless, driven by puppeteer-core over
// WebDriver BiDi): the same page works there too. Run by tests/e2e/console.rs
// (`the_console_in_firefox`), which starts the server and passes:
//
//   CONSOLE_URL  http://127.0.0.1:PORT/ui
//   TOKEN_A      a token for PROJECT_A only (every right)
//   PROJECT_A    a server-side project the runs happen in
//   PROJECT_B    another project, which TOKEN_A must not reveal
//   FIREFOX      the browser (default /usr/bin/firefox)
//
// Each step prints one line; a failed expectation ends the script with status 1 and says why.
import puppeteer from "puppeteer-core";
import { mkdtempSync, rmSync } from "node:fs";
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
const STEP_MS = 30000;

function expect(condition, message) {
  if (!condition) throw new Error("expectation failed: " + message);
}
function step(text) {
  console.log("step: " + text);
}

const profile = mkdtempSync(join(tmpdir(), "codeflow-console-firefox-"));
const browser = await puppeteer.launch({
  browser: "firefox",
  protocol: "webDriverBiDi",
  executablePath: process.env.FIREFOX || "/usr/bin/firefox",
  headless: true,
  userDataDir: profile,
  args: ["--no-remote"],
});
const errors = [];
let failed = false;
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.setViewport({ width: 1280, height: 900 });

  step("sign in");
  await page.goto(url);
  await page.waitForSelector("#token");
  expect(await page.$eval("#nav", (n) => getComputedStyle(n).display === "none"), "the navigation is hidden until signed in");
  await page.type("#token", tokenA);
  await page.keyboard.press("Enter");

  step("the projects page");
  await page.waitForSelector(`[data-project="${projectA}"]`, { timeout: STEP_MS });
  const body = await page.$eval("body", (b) => b.textContent);
  expect(!body.includes(projectB), `nothing of ${projectB}`);

  step("a run, and a reload in the middle of it");
  await page.goto(url + "#/project/" + projectA);
  await page.waitForSelector("#prompt");
  await page.type("#prompt", "from firefox mock:lines=8 mock:slow=200 mock:no-record");
  await page.click("#start-run");
  await page.waitForFunction(() => document.querySelector("#cancel-run").getAttribute("data-run"), { timeout: STEP_MS });
  const run = await page.$eval("#cancel-run", (b) => b.getAttribute("data-run"));
  await page.waitForSelector(`article.run[data-run="${run}"] .line[data-seq="3"]`, { timeout: STEP_MS });
  await page.reload();
  await page.waitForSelector(`article.run[data-run="${run}"] .badge.complete`, { timeout: STEP_MS });
  const seqs = await page.$$eval(`article.run[data-run="${run}"] .line`, (ls) => ls.map((l) => Number(l.getAttribute("data-seq"))));
  expect(JSON.stringify(seqs) === JSON.stringify([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), "every line once, in order: " + JSON.stringify(seqs));

  step(`${projectB} is refused`);
  await page.goto(url + "#/project/" + projectB);
  await page.waitForFunction(() => /does not grant project/.test(document.querySelector("#project-error").textContent), { timeout: STEP_MS });

  step("the service page");
  await page.goto(url + "#/service");
  await page.waitForFunction(() => Number(document.querySelector("#figures")?.getAttribute("data-samples")) >= 2, { timeout: STEP_MS });

  expect(errors.length === 0, "no script errors: " + errors.join(" | "));
  console.log("ok: every step passed");
} catch (e) {
  failed = true;
  console.error(String(e && e.stack ? e.stack : e));
  console.error("page errors: " + errors.join(" | "));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
