import { describe, expect, it } from "vitest";
import { createOnboardingClient } from "../src/client.js";
import { ProblemError } from "../src/problem.js";

/** A stand-in transport recording what the client sends (the e2e test uses the real backend). */
function transport(answer: (request: Request, body: string) => Response) {
  const seen: { request: Request; body: string }[] = [];
  const fetchImpl: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    const body = await request.clone().text();
    seen.push({ request, body });
    return answer(request, body);
  };
  return { seen, fetchImpl };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

describe("client", () => {
  it("saves with If-Match and an Idempotency-Key and returns the new ETag", async () => {
    const { seen, fetchImpl } = transport(() =>
      json(200, { step: "profile", answers: { fullName: "Ada" }, version: 4, completed: true, flowVersion: 1, status: {} }, { etag: '"4"' }),
    );
    const client = createOnboardingClient({ baseUrl: "http://api.test", fetch: fetchImpl, retry: false });
    const result = await client.saveStep("profile", { answers: { fullName: "Ada" }, complete: true }, { ifMatch: '"3"' });
    expect(result.etag).toBe('"4"');
    expect(result.version).toBe(4);
    const sent = seen[0];
    expect(sent?.request.method).toBe("PUT");
    expect(new URL(sent?.request.url ?? "").pathname).toBe("/api/onboarding/steps/profile");
    expect(sent?.request.headers.get("if-match")).toBe('"3"');
    expect(sent?.request.headers.get("idempotency-key")).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(sent?.body ?? "")).toEqual({ answers: { fullName: "Ada" }, complete: true });
  });

  it("throws problems as ProblemError with their field errors", async () => {
    const { fetchImpl } = transport(() =>
      json(422, {
        type: "https://onboarding.dev/problems/validation-failed",
        title: "Unprocessable Entity",
        status: 422,
        detail: "invalid",
        errors: [{ pointer: "/slug", code: "invalid_slug", message: "lowercase letters, digits and -" }],
      }),
    );
    const client = createOnboardingClient({ baseUrl: "http://api.test", fetch: fetchImpl, retry: false });
    const error = await client.saveStep("organization", { answers: { slug: "A B" }, complete: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProblemError);
    expect(error instanceof ProblemError && error.fieldErrors().slug?.[0]?.code).toBe("invalid_slug");
  });

  it("recovers from a rejected session once: POST /session, then the same request again", async () => {
    let recovered = false;
    const { seen, fetchImpl } = transport((request) => {
      const path = new URL(request.url).pathname;
      if (path === "/api/onboarding/session") {
        recovered = true;
        return json(201, { session: "s", expiresAt: "2030-01-01T00:00:00Z" });
      }
      return recovered
        ? json(200, { authenticated: false, state: "not_started", redirectTo: "/onboarding/profile" })
        : json(401, { type: "https://onboarding.dev/problems/unauthorized", title: "Unauthorized", status: 401, detail: "bad session" });
    });
    const client = createOnboardingClient({ baseUrl: "http://api.test", fetch: fetchImpl, retry: false });
    const status = await client.status();
    expect(status.redirectTo).toBe("/onboarding/profile");
    expect(seen.map((s) => `${s.request.method} ${new URL(s.request.url).pathname}`)).toEqual([
      "GET /api/onboarding/status",
      "POST /api/onboarding/session",
      "GET /api/onboarding/status",
    ]);
  });

  it("shares one POST /session among calls refused at the same moment", async () => {
    // Three calls with the same rejected cookie, answered 401 only once all three are in flight.
    let session: string | undefined;
    let waiting = 0;
    let release: () => void = () => {};
    const allInFlight = new Promise<void>((resolve) => (release = resolve));
    let started = 0;
    const fetchImpl: typeof fetch = async (input, init) => {
      const request = new Request(input, init);
      if (new URL(request.url).pathname === "/api/onboarding/session") {
        started += 1;
        await new Promise((resolve) => setTimeout(resolve, 10));
        session = `s${started}`;
        return json(201, { session, expiresAt: "2030-01-01T00:00:00Z" });
      }
      if (session !== undefined) return json(200, { id: "default", version: 1, steps: [], session });
      if (++waiting === 3) release();
      await allInFlight;
      return json(401, { type: "https://onboarding.dev/problems/unauthorized", title: "Unauthorized", status: 401, detail: "bad session" });
    };
    const client = createOnboardingClient({ baseUrl: "http://api.test", fetch: fetchImpl, retry: false });
    const flows = await Promise.all([client.flow(), client.flow(), client.flow()]);
    expect(started).toBe(1);
    expect(flows.map((flow) => (flow as unknown as { session: string }).session)).toEqual(["s1", "s1", "s1"]);
  });

  it("reports a missing AI policy route as undefined", async () => {
    const { fetchImpl } = transport(() => json(404, { type: "https://onboarding.dev/problems/not-found", title: "Not Found", status: 404, detail: "no route" }));
    const client = createOnboardingClient({ baseUrl: "http://api.test", fetch: fetchImpl, retry: false });
    expect(await client.aiPolicy()).toBeUndefined();
  });

  it("turns a network failure into a status-0 problem", async () => {
    const client = createOnboardingClient({
      baseUrl: "http://api.test",
      retry: false,
      fetch: async () => {
        throw new TypeError("fetch failed");
      },
    });
    const error = await client.flow().catch((e: unknown) => e);
    expect(error instanceof ProblemError && error.status).toBe(0);
  });
});
