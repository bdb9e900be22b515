// The from-readme wizard in real Chromium (Debian's /usr/bin/chromium, never
// a downloaded browser), driven by playwright-core.
//
//   APP_URL=http://127.0.0.1:3200 node e2e/run.mjs [scenario substring]
//
// Scenarios: the whole flow (anonymous steps from GET /flow, sign-in, merge,
// complete, the app page), two tabs on one step (412 shown and resolved both
// ways), and stale session cookies (on page load and mid-page).
import { createHmac } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const APP = (process.env.APP_URL ?? "http://127.0.0.1:3200").replace(/\/$/, "");
const only = process.argv[2];
const artifacts = new URL("../artifacts/", import.meta.url).pathname;
const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
let serial = 0;
const unique = (prefix) => `${prefix}-${run}-${++serial}`;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const userDataDir = mkdtempSync(join(tmpdir(), "from-readme-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
context.setDefaultTimeout(20_000);
const pageErrors = [];
context.on("page", watch);
for (const page of context.pages()) watch(page);
function watch(page) {
  page.on("pageerror", (error) => pageErrors.push(`${page.url()}: ${error.message}`));
}

async function freshPage() {
  for (const page of context.pages()) await page.close();
  await context.clearCookies();
  return context.newPage();
}

async function api(page, path, init) {
  return page.evaluate(
    async ([path, init]) => {
      const response = await fetch(path, init);
      return { status: response.status, body: await response.json().catch(() => null) };
    },
    [path, init ?? {}],
  );
}

async function sessionCookie() {
  return (await context.cookies(APP)).find((cookie) => cookie.name === "onboarding_session")?.value;
}

async function alerts(page) {
  // Not Next's own route announcer, which is an empty role=alert region.
  return page.locator("[role=alert]:not(#__next-route-announcer__)").allInnerTexts();
}

const stepPath = (id) => new RegExp(`/onboarding/${id}$`);
const currentStep = (page) => new URL(page.url()).pathname.replace(/^\/onboarding\//, "");

/** Fills the form of the step on screen from its definition in GET /flow. */
async function answerStep(page, step, overrides = {}) {
  for (const field of step.fields) {
    const value = overrides[field.name];
    const kind = field.kind.type;
    if (kind === "boolean") {
      await page.locator(`input[name="${field.name}"]`).check();
    } else if (kind === "enum") {
      const option = value ?? (field.kind.options.includes("2-10") ? "2-10" : field.kind.options[0]);
      await page.locator(`select[name="${field.name}"]`).selectOption(option);
    } else if (kind === "multiEnum") {
      await page.locator(`input[name="${field.name}.${field.kind.options[0]}"]`).check();
    } else {
      const text =
        value ??
        {
          slug: unique("org").toLowerCase(),
          url: "https://example.com",
          email: "someone@example.com",
          emailList: `${unique("mate")}@example.com`,
          timezone: "Europe/Berlin",
          number: "1",
        }[kind] ??
        "Answered from README";
      await page.locator(`[name="${field.name}"]`).fill(text);
    }
  }
}

async function submit(page, from) {
  await page.locator("button[type=submit]").click();
  await page.waitForURL((url) => url.pathname !== `/onboarding/${from}`);
}

/** Answers every step with fields as an anonymous visitor, up to the review step. */
async function answerAll(page, overrides = {}) {
  const flow = await api(page, "/api/onboarding/flow");
  check(flow.status === 200, `GET /flow answered ${flow.status}`);
  const visited = [];
  for (let guard = 0; guard < 20; guard++) {
    const id = currentStep(page);
    const step = flow.body.steps.find((candidate) => candidate.id === id);
    check(step !== undefined, `the page ${page.url()} is no step of the flow`);
    if (step.fields.length === 0) return { flow: flow.body, visited, last: step };
    await page.getByRole("heading", { name: step.title }).waitFor();
    await answerStep(page, step, overrides);
    await submit(page, id);
    visited.push(id);
  }
  throw new Error("the wizard never reached a step without fields");
}

async function signIn(page, userId) {
  await page.waitForURL(/\/sign-in/);
  await page.locator("input[name=userId]").fill(userId);
  await page.getByRole("button", { name: "Sign in" }).click();
}

const scenarios = {
  async "whole flow: anonymous steps, sign-in and merge, complete, the app page"() {
    const page = await freshPage();
    await page.goto(`${APP}/`);
    await page.waitForURL(stepPath("profile"));
    check((await sessionCookie()) !== undefined, "the proxy started no anonymous session");
    const name = `Ada ${run}`;
    const { visited, last } = await answerAll(page, { fullName: name });
    check(visited.length >= 4, `only ${visited.join(", ")} were answered`);
    const before = await api(page, "/api/onboarding/status");
    check(before.body.authenticated === false && before.body.state === "in_progress", `status ${JSON.stringify(before.body)}`);

    await page.getByRole("link", { name: "Sign in to finish" }).click();
    const userId = unique("user");
    await signIn(page, userId);
    await page.waitForURL(stepPath(last.id));
    await page.getByText("signed in", { exact: false }).first().waitFor();
    check((await sessionCookie()) === undefined, "the merge left the session cookie");
    const profile = await api(page, "/api/onboarding/steps/profile");
    check(profile.body.answers?.fullName === name, `the merged profile is ${JSON.stringify(profile.body)}`);

    await page.getByRole("button", { name: "Complete onboarding" }).click();
    await page.waitForURL(`${APP}/`);
    await page.getByTestId("app-home").waitFor();
    const after = await api(page, "/api/onboarding/status");
    check(after.body.state === "completed", `status after complete: ${JSON.stringify(after.body)}`);
    // The wizard is closed now: the proxy sends its pages to the app.
    await page.goto(`${APP}/onboarding/profile`);
    await page.waitForURL(`${APP}/`);
  },

  async "two tabs save one step: the 412 is shown and resolved (keep mine, then use theirs)"() {
    const first = await freshPage();
    await first.goto(`${APP}/onboarding/profile`);
    await first.locator("input[name=fullName]").fill("Opened once");
    await submit(first, "profile");

    for (const choice of ["mine", "theirs"]) {
      const a = first;
      const b = await context.newPage();
      await a.goto(`${APP}/onboarding/profile`);
      await b.goto(`${APP}/onboarding/profile`);
      const stored = (await api(a, "/api/onboarding/steps/profile")).body.answers.fullName;
      for (const tab of [a, b]) await tab.locator("input[name=fullName]").and(tab.locator(`[value="${stored}"]`)).waitFor();

      await a.locator("input[name=fullName]").fill(`Tab A ${choice}`);
      await submit(a, "profile");
      await b.locator("input[name=fullName]").fill(`Tab B ${choice}`);
      await b.locator("button[type=submit]").click();
      const banner = b.getByTestId("conflict");
      await banner.waitFor();
      const text = await banner.innerText();
      check(text.includes(`Tab A ${choice}`) && text.includes(`Tab B ${choice}`), `the conflict shows ${text}`);

      if (choice === "mine") {
        await banner.getByRole("button", { name: "Keep mine" }).click();
        await b.waitForURL((url) => url.pathname !== "/onboarding/profile");
      } else {
        await banner.getByRole("button", { name: "Use the saved answers" }).click();
        await banner.waitFor({ state: "detached" });
        const shown = await b.locator("input[name=fullName]").inputValue();
        check(shown === `Tab A ${choice}`, `after "use the saved answers" the field shows ${shown}`);
        await submit(b, "profile");
      }
      const saved = await api(b, "/api/onboarding/steps/profile");
      const expected = choice === "mine" ? `Tab B ${choice}` : `Tab A ${choice}`;
      check(saved.body.answers.fullName === expected, `stored ${JSON.stringify(saved.body.answers)}, expected ${expected}`);
      await b.close();
    }
  },

  async "a stale session cookie is replaced without the user noticing (page load and mid-page)"() {
    // On page load: a cookie signed before SESSION_SECRET was rotated, which
    // the backend no longer accepts (a merged session is still accepted, as
    // an empty one: README's list of refused sessions named it wrongly). The
    // page left behind (organization) may still send its own requests with
    // it: their 401s must not undo the cookie the new page load got.
    const page = await freshPage();
    await page.goto(`${APP}/onboarding/profile`);
    const live = await sessionCookie();
    check(live !== undefined, "no session cookie");
    const id = live.split(".")[0];
    const stale = `${id}.${createHmac("sha256", "a-session-secret-since-rotated-0123456789").update(id).digest("base64url")}`;
    await page.locator("input[name=fullName]").fill("Before the rotation");
    await submit(page, "profile");

    await context.clearCookies();
    await context.addCookies([{ name: "onboarding_session", value: stale, url: APP, httpOnly: true, sameSite: "Lax" }]);
    await page.goto(`${APP}/onboarding/profile`);
    await page.waitForURL(stepPath("profile"));
    await page.getByRole("heading", { name: "About you" }).waitFor();
    const replaced = await sessionCookie();
    check(
      replaced !== undefined && replaced !== stale,
      `the stale cookie was not replaced on page load: ${replaced === undefined ? "no cookie is left" : "the stale one is left"}`,
    );
    check((await page.locator("input[name=fullName]").inputValue()) === "", "a stale session's answers showed");
    await page.locator("input[name=fullName]").fill("After a stale cookie");
    await submit(page, "profile");
    check((await alerts(page)).length === 0, `alerts: ${await alerts(page)}`);

    // Mid-page: the cookie goes bad (its signature no longer verifies) after the page loaded.
    await page.waitForURL(stepPath("organization"));
    await page.getByRole("heading", { name: "Your organization" }).waitFor();
    const flow = await api(page, "/api/onboarding/flow");
    const current = await sessionCookie();
    const at = current.indexOf(".") + 5; // inside the signature
    const tampered = `${current.slice(0, at)}${current[at] === "A" ? "B" : "A"}${current.slice(at + 1)}`;
    await context.addCookies([{ name: "onboarding_session", value: tampered, url: APP, httpOnly: true, sameSite: "Lax" }]);
    const seen = [];
    const record = (response) => {
      const url = new URL(response.url());
      if (url.pathname.startsWith("/api/onboarding/")) seen.push(`${response.request().method()} ${url.pathname} ${response.status()}`);
    };
    page.on("response", record);
    const organization = flow.body.steps.find((step) => step.id === "organization");
    await answerStep(page, organization);
    await submit(page, "organization");
    page.off("response", record);
    // The client saw the 401, started a new session and repeated the save, on its own.
    const refused = seen.findIndex((line) => line.endsWith(" 401"));
    check(
      refused >= 0 && seen[refused + 1] === "POST /api/onboarding/session 201" && seen[refused + 2]?.startsWith("PUT /api/onboarding/steps/organization 200"),
      `requests after the cookie went bad: ${seen.join(", ")}`,
    );
    check((await alerts(page)).length === 0, `alerts after the mid-page stale cookie: ${await alerts(page)}`);
    const now = await sessionCookie();
    check(now !== undefined && now !== tampered, "the tampered cookie was not replaced");
    const saved = await api(page, "/api/onboarding/steps/organization");
    check(saved.status === 200 && saved.body.completed === true, `organization after recovery: ${JSON.stringify(saved.body)}`);
  },
};

let failed = 0;
mkdirSync(artifacts, { recursive: true });
for (const [name, scenario] of Object.entries(scenarios)) {
  if (only !== undefined && !name.includes(only)) continue;
  const started = Date.now();
  try {
    await scenario();
    console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (error) {
    failed++;
    console.log(`FAIL ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)\n     ${error.stack ?? error}`);
    for (const [index, page] of context.pages().entries()) {
      const file = join(artifacts, `${name.split(":")[0].replace(/\W+/g, "-")}-${index}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
      console.log(`     ${page.url()} → ${file}`);
    }
  }
}
if (pageErrors.length > 0) {
  failed++;
  console.log(`FAIL uncaught errors in the pages:\n     ${pageErrors.join("\n     ")}`);
}
await context.close();
rmSync(userDataDir, { recursive: true, force: true });
process.exit(failed === 0 ? 0 : 1);
