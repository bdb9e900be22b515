// End-to-end tests of the example wizard in real Chromium (Debian's
// /usr/bin/chromium driven by playwright-core), against the real backend
// (dev server, PostgreSQL, Redis). Started by scripts/e2e, which runs the
// backend and the built app first:
//
//   APP_URL=http://127.0.0.1:3100 API_URL=http://127.0.0.1:3101 node e2e/run.mjs [scenario…]
//
// Screenshots of every open page of a failed scenario go to e2e/artifacts/.
import { createHmac, randomBytes } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const APP = process.env.APP_URL ?? "http://127.0.0.1:3100";
const API = process.env.API_URL ?? "http://127.0.0.1:3101";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SECRET = process.env.AUTH_JWT_SECRET ?? "dev-only-onboarding-jwt-secret-0123456789abcdef";
const ARTIFACTS = path.join(path.dirname(fileURLToPath(import.meta.url)), "artifacts");
const RUN = randomBytes(4).toString("hex");
const TIMEOUT = 15_000;

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

/** An HS256 token as the example's stand-in provider signs it. */
function token(claims) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ ...claims, iat: now, exp: now + 600 })}`;
  return `${head}.${createHmac("sha256", SECRET).update(head).digest("base64url")}`;
}

/** A call straight to the backend (to set up another user's data, never to replace the browser). */
async function api(method, route, { bearer, body, ifMatch } = {}) {
  const headers = { "idempotency-key": randomBytes(12).toString("hex") };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  if (ifMatch) headers["if-match"] = ifMatch;
  const response = await fetch(`${API}${route}`, { method, headers, body: body && JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

const answers = {
  profile: { fullName: "Ada Lovelace", jobRole: "engineering" },
  goals: { useCases: ["analytics"] },
  preferences: { productUpdates: true, weeklyDigest: false, timezone: "Europe/Berlin", locale: "en-GB" },
};

// ---- browser helpers -------------------------------------------------------

async function waitForPath(page, pathname) {
  await page.waitForURL((url) => url.pathname === pathname, { timeout: TIMEOUT });
}

async function fillText(page, field, value) {
  await page.locator(`[data-field="${field}"] input[type="text"], [data-field="${field}"] textarea`).first().fill(value);
}

async function choose(page, field, value) {
  await page.locator(`[data-field="${field}"] select`).selectOption(value);
}

async function tick(page, field, value) {
  const selector = value === undefined ? `[data-field="${field}"] input[type="checkbox"]` : `[data-field="${field}"] input[value="${value}"]`;
  await page.locator(selector).check();
}

/** Clicks "Save and continue" and waits for the next step's page. */
async function saveAndContinue(page, nextPath) {
  await page.getByRole("button", { name: "Save and continue" }).click();
  await waitForPath(page, nextPath);
}

async function signIn(page, userId) {
  await page.goto(`${APP}/sign-in?next=/onboarding`);
  await page.locator("#user-id").fill(userId);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((url) => url.pathname.startsWith("/onboarding/"), { timeout: TIMEOUT });
  await page.getByTestId("signed-in-as").waitFor({ timeout: TIMEOUT });
}

async function fillProfile(page, name) {
  await page.getByTestId("step-profile").waitFor({ timeout: TIMEOUT });
  await fillText(page, "fullName", name);
  await choose(page, "jobRole", "engineering");
}

async function fillOrganization(page, slug) {
  await page.getByTestId("step-organization").waitFor({ timeout: TIMEOUT });
  await fillText(page, "name", "Acme Analytics");
  await fillText(page, "slug", slug);
  await choose(page, "size", "2-10");
  await choose(page, "industry", "saas");
}

/** From the goals step to the review page. */
async function finishSteps(page) {
  await page.getByTestId("step-goals").waitFor({ timeout: TIMEOUT });
  await tick(page, "useCases", "analytics");
  await tick(page, "useCases", "reporting");
  await fillText(page, "primaryGoal", "  Ship weekly reports  ");
  await saveAndContinue(page, "/onboarding/team");
  await fillText(page, "invites", `grace-${RUN}@example.com\nalan-${RUN}@example.com`);
  await saveAndContinue(page, "/onboarding/preferences");
  await tick(page, "productUpdates");
  await choose(page, "timezone", "Europe/Berlin");
  await choose(page, "locale", "en-GB");
  await saveAndContinue(page, "/onboarding/review");
}

async function cookie(context, name) {
  return (await context.cookies(APP)).find((c) => c.name === name);
}

// ---- scenarios ---------------------------------------------------------------

const scenarios = {
  /** Anonymous drafts → sign-in → merge → the other steps → complete → the app. */
  async "whole flow"(context) {
    const page = await context.newPage();
    const writes = [];
    page.on("request", (request) => {
      const url = new URL(request.url());
      if (request.method() !== "GET" && url.pathname.startsWith("/api/onboarding/")) {
        writes.push({ route: `${request.method()} ${url.pathname}`, headers: request.headers() });
      }
    });
    await page.goto(`${APP}/`);
    // The app is gated: an anonymous visitor lands on the first step.
    await waitForPath(page, "/onboarding/profile");
    assert((await cookie(context, "onboarding_session")) !== undefined, "the proxy started an anonymous session");
    await fillProfile(page, "Ada Lovelace");
    await saveAndContinue(page, "/onboarding/organization");
    await fillOrganization(page, `acme-${RUN}`);
    await saveAndContinue(page, "/onboarding/goals");

    await signIn(page, `ada-${RUN}`);
    // The merge moved the anonymous drafts to the account and cleared the session.
    await waitForPath(page, "/onboarding/goals");
    assert((await cookie(context, "onboarding_session")) === undefined, "merge cleared the session cookie");
    await page.goto(`${APP}/onboarding/organization`);
    await page.getByTestId("step-organization").waitFor({ timeout: TIMEOUT });
    const slug = await page.locator('[data-field="slug"] input').inputValue();
    assert(slug === `acme-${RUN}`, `the anonymous organization draft was merged (slug ${slug})`);
    await page.goto(`${APP}/onboarding/goals`);
    await finishSteps(page);

    await page.getByRole("button", { name: "Complete onboarding" }).click();
    await waitForPath(page, "/");
    await page.getByTestId("app-home").waitFor({ timeout: TIMEOUT });
    // Every step save carried If-Match and an Idempotency-Key; so did /complete.
    const saves = writes.filter((w) => w.route.startsWith("PUT /api/onboarding/steps/"));
    const saved = new Set(saves.map((w) => w.route.split("/").at(-1)));
    for (const step of ["profile", "organization", "goals", "team", "preferences"]) {
      assert(saved.has(step), `the ${step} step was saved`);
    }
    for (const save of saves) {
      assert(/^"\d+"$/.test(save.headers["if-match"] ?? ""), `${save.route} sent If-Match (${save.headers["if-match"]})`);
      assert((save.headers["idempotency-key"] ?? "").length > 0, `${save.route} sent an Idempotency-Key`);
    }
    const complete = writes.find((w) => w.route === "POST /api/onboarding/complete");
    assert(complete !== undefined && complete.headers["idempotency-key"], "POST /complete sent an Idempotency-Key");
    assert(writes.some((w) => w.route === "POST /api/onboarding/session/merge"), "the session was merged at sign-in");
    // Completed: the wizard now sends the user to the app.
    await page.goto(`${APP}/onboarding/profile`);
    await waitForPath(page, "/");

    // The new organization's owner reads its funnel.
    // Events are stored just after their 202: look again for a moment.
    let reached = [];
    for (let attempt = 0; attempt < 10 && reached.length === 0; attempt++) {
      await page.goto(`${APP}/admin`);
      await page.getByTestId("funnel").waitFor({ timeout: TIMEOUT });
      reached = await page.locator('[data-testid="funnel"] tbody tr td:first-child').allInnerTexts();
      if (reached.length === 0) await page.waitForTimeout(300);
    }
    assert(reached.includes("preferences"), `the funnel lists the steps viewed after sign-in (${reached.join(", ")})`);
    // The owner forbids AI for the organization's members, and the page says so.
    const policy = page.getByTestId("ai-policy");
    await policy.waitFor({ timeout: TIMEOUT });
    assert((await policy.innerText()).includes("allowed"), "AI is allowed until an admin says otherwise");
    await policy.getByRole("button", { name: "Forbid AI" }).click();
    await policy.getByText("forbidden for every member").waitFor({ timeout: TIMEOUT });
  },

  /** Two tabs save the same step: the second gets the 412, sees the other answer, keeps its own. */
  async "two tabs"(context) {
    const first = await context.newPage();
    await first.goto(`${APP}/onboarding/profile`);
    await first.getByTestId("step-profile").waitFor({ timeout: TIMEOUT });
    const second = await context.newPage();
    await second.goto(`${APP}/onboarding/profile`);
    await second.getByTestId("step-profile").waitFor({ timeout: TIMEOUT });

    await fillProfile(first, "Tab One");
    await saveAndContinue(first, "/onboarding/organization");

    await fillProfile(second, "Tab Two");
    await second.getByRole("button", { name: "Save and continue" }).click();
    const conflict = second.getByTestId("conflict");
    await conflict.waitFor({ timeout: TIMEOUT });
    const shown = await conflict.innerText();
    assert(shown.includes("Tab One"), `the conflict shows the other tab's answer: ${shown}`);
    await second.getByRole("button", { name: "Keep mine" }).click();
    await conflict.waitFor({ state: "detached", timeout: TIMEOUT });
    await second.getByTestId("save-state").filter({ hasText: "Saved" }).waitFor({ timeout: TIMEOUT });

    await first.goto(`${APP}/onboarding/profile`);
    await first.getByTestId("step-profile").waitFor({ timeout: TIMEOUT });
    const stored = await first.locator('[data-field="fullName"] input').inputValue();
    assert(stored === "Tab Two", `the resolved answer is stored (${stored})`);
  },

  /** A rule only the server knows (the slug is taken): the 422 of /complete shows under the field. */
  async "server-only 422"(context) {
    const taken = `taken-${RUN}`;
    const owner = token({ sub: `owner-${RUN}` });
    await api("PUT", "/api/onboarding/steps/profile", { bearer: owner, body: { answers: answers.profile, complete: true } });
    await api("PUT", "/api/onboarding/steps/organization", {
      bearer: owner,
      body: { answers: { name: "Taken Inc", slug: taken, size: "1", industry: "saas" }, complete: true },
    });
    await api("PUT", "/api/onboarding/steps/goals", { bearer: owner, body: { answers: answers.goals, complete: true } });
    await api("PUT", "/api/onboarding/steps/preferences", { bearer: owner, body: { answers: answers.preferences, complete: true } });
    await api("POST", "/api/onboarding/complete", { bearer: owner });

    const page = await context.newPage();
    await signIn(page, `second-${RUN}`);
    await page.goto(`${APP}/onboarding/profile`);
    await fillProfile(page, "Grace Hopper");
    await saveAndContinue(page, "/onboarding/organization");
    await fillOrganization(page, taken);
    await saveAndContinue(page, "/onboarding/goals");
    await finishSteps(page);
    await page.getByRole("button", { name: "Complete onboarding" }).click();

    await waitForPath(page, "/onboarding/organization");
    const error = page.locator('[data-field="slug"] .field-error');
    await error.waitFor({ timeout: TIMEOUT });
    const message = await error.innerText();
    assert(message.length > 0, "the slug error is shown under the slug field");
    console.log(`    slug error shown: ${JSON.stringify(message)}`);

    await fillText(page, "slug", `free-${RUN}`);
    await saveAndContinue(page, "/onboarding/goals");
    await page.goto(`${APP}/onboarding/review`);
    await page.getByRole("button", { name: "Complete onboarding" }).click();
    await waitForPath(page, "/");
  },

  /** A session cookie the backend no longer accepts is replaced on the next page load. */
  async "stale session cookie"(context) {
    const stale = `${randomBytes(16).toString("hex")}.${randomBytes(32).toString("base64url")}`;
    await context.addCookies([{ name: "onboarding_session", value: stale, url: APP, httpOnly: true, sameSite: "Lax" }]);
    const page = await context.newPage();
    await page.goto(`${APP}/onboarding/profile`);
    await page.getByTestId("step-profile").waitFor({ timeout: TIMEOUT });
    const replaced = await cookie(context, "onboarding_session");
    assert(replaced !== undefined && replaced.value !== stale, "the stale cookie was replaced by a new session");
    assert((await page.getByTestId("problem").count()) === 0, "no error is shown");
    await fillProfile(page, "Fresh Start");
    await saveAndContinue(page, "/onboarding/organization");
  },

  /** The session goes stale while a wizard page is open: the save recovers (new session, same request). */
  async "stale session cookie while the wizard is open"(context) {
    const page = await context.newPage();
    await page.goto(`${APP}/onboarding/profile`);
    await page.getByTestId("step-profile").waitFor({ timeout: TIMEOUT });
    const stale = `${randomBytes(16).toString("hex")}.${randomBytes(32).toString("base64url")}`;
    await context.addCookies([{ name: "onboarding_session", value: stale, url: APP, httpOnly: true, sameSite: "Lax" }]);
    await fillProfile(page, "Still Here");
    await saveAndContinue(page, "/onboarding/organization");
    const replaced = await cookie(context, "onboarding_session");
    assert(replaced !== undefined && replaced.value !== stale, "the client started a new session");
    await page.goto(`${APP}/onboarding/profile`);
    await page.getByTestId("step-profile").waitFor({ timeout: TIMEOUT });
    const stored = await page.locator('[data-field="fullName"] input').inputValue();
    assert(stored === "Still Here", `the save went through in the new session (${stored})`);
  },

  /**
   * The backend's side of the same (issue #12, item 4): an API call with a
   * rejected session cookie answers 401 and leaves the cookie alone (a
   * clearing on a slow 401 could delete the cookie of the session that
   * replaced it meanwhile), and POST /session then replaces it.
   */
  async "stale session cookie refused by the backend and replaced by POST /session"(context) {
    const stale = `${randomBytes(16).toString("hex")}.${randomBytes(32).toString("base64url")}`;
    const page = await context.newPage();
    await page.goto(`${APP}/sign-in`);
    await context.addCookies([{ name: "onboarding_session", value: stale, url: APP, httpOnly: true, sameSite: "Lax" }]);
    const status = await page.evaluate(async () => (await fetch("/api/onboarding/steps/profile")).status);
    assert(status === 401, `a rejected session cookie is a 401 (got ${status})`);
    const left = await cookie(context, "onboarding_session");
    assert(left?.value === stale, `the 401 left the rejected cookie for POST /session to replace (${left?.value})`);
    const started = await page.evaluate(async () => (await fetch("/api/onboarding/session", { method: "POST" })).status);
    assert(started === 201, `POST /session started a new session (got ${started})`);
    const fresh = await cookie(context, "onboarding_session");
    assert(fresh !== undefined && fresh.value !== stale, "a new session cookie is set");
  },
};

// ---- runner --------------------------------------------------------------------

const only = process.argv.slice(2);
await rm(ARTIFACTS, { recursive: true, force: true });
// launch() gives Chromium a fresh temporary profile (user-data dir) each run.
const browser = await chromium.launch({
  executablePath: CHROMIUM,
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
console.log(`chromium ${browser.version()}, app ${APP}, api ${API}, run ${RUN}`);
const results = [];
for (const [name, scenario] of Object.entries(scenarios)) {
  if (only.length > 0 && !only.includes(name)) continue;
  const context = await browser.newContext();
  const logs = [];
  context.on("page", (page) => {
    page.on("console", (message) => {
      if (message.type() === "error") logs.push(`console: ${message.text()}`);
    });
    page.on("pageerror", (error) => logs.push(`page error: ${error.message}`));
  });
  const started = Date.now();
  try {
    await scenario(context);
    results.push({ name, ok: true, ms: Date.now() - started });
    console.log(`PASS ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    results.push({ name, ok: false, ms: Date.now() - started });
    console.log(`FAIL ${name} (${Date.now() - started} ms): ${error instanceof Error ? error.message : error}`);
    await mkdir(ARTIFACTS, { recursive: true });
    const slug = name.replace(/[^a-z0-9]+/gi, "-");
    for (const [index, page] of context.pages().entries()) {
      const file = path.join(ARTIFACTS, `${slug}-${index}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
      console.log(`    screenshot ${file} (at ${page.url()})`);
    }
    for (const line of logs.slice(-10)) console.log(`    ${line}`);
  } finally {
    await context.close();
  }
}
await browser.close();
const failed = results.filter((result) => !result.ok);
console.log(`${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length > 0 ? 1 : 0);
