import { describe, expect, it } from "vitest";
import { etagOf, newIdempotencyKey, retryingFetch, versionOfEtag } from "../src/http.js";

describe("ETags and keys", () => {
  it("round-trips versions", () => {
    expect(etagOf(3)).toBe('"3"');
    expect(versionOfEtag('"3"')).toBe(3);
    expect(versionOfEtag('W/"12"')).toBe(12);
    expect(versionOfEtag("*")).toBeUndefined();
    expect(versionOfEtag(null)).toBeUndefined();
  });
  it("makes distinct idempotency keys", () => {
    const a = newIdempotencyKey();
    expect(a).toMatch(/^[0-9a-f-]{36}$/);
    expect(newIdempotencyKey()).not.toBe(a);
  });
});

function recorder(statuses: number[], headers: Record<string, string> = {}) {
  const seen: { method: string; key: string | null; body: string }[] = [];
  const fetchImpl: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    seen.push({ method: request.method, key: request.headers.get("idempotency-key"), body: await request.text() });
    const status = statuses[Math.min(seen.length - 1, statuses.length - 1)] ?? 200;
    return new Response(status === 200 ? "{}" : "", { status, headers });
  };
  return { seen, fetchImpl };
}

describe("retries", () => {
  const waits: number[] = [];
  const sleep = async (ms: number) => {
    waits.push(ms);
  };

  it("retries a write with an Idempotency-Key, same key and body each time", async () => {
    const { seen, fetchImpl } = recorder([503, 503, 200], { "retry-after": "1" });
    const response = await retryingFetch(fetchImpl, { sleep })("http://api/x", {
      method: "PUT",
      headers: { "idempotency-key": "k1" },
      body: '{"a":1}',
    });
    expect(response.status).toBe(200);
    expect(seen).toHaveLength(3);
    expect(new Set(seen.map((s) => `${s.key}|${s.body}`))).toEqual(new Set(['k1|{"a":1}']));
    // Retry-After (1 s) honoured, with jitter.
    expect(waits.at(-1)).toBeGreaterThanOrEqual(800);
  });

  it("never retries a write without a key", async () => {
    const { seen, fetchImpl } = recorder([503, 200]);
    const response = await retryingFetch(fetchImpl, { sleep })("http://api/x", { method: "POST", body: "{}" });
    expect(response.status).toBe(503);
    expect(seen).toHaveLength(1);
  });

  it("gives up after the retries and returns the last answer", async () => {
    const { seen, fetchImpl } = recorder([429]);
    const response = await retryingFetch(fetchImpl, { sleep, retries: 1 })("http://api/x");
    expect(response.status).toBe(429);
    expect(seen).toHaveLength(2);
  });

  it("retries a GET after a network error", async () => {
    let calls = 0;
    const flaky: typeof fetch = async () => {
      calls++;
      if (calls === 1) throw new TypeError("fetch failed");
      return new Response("{}", { status: 200 });
    };
    const response = await retryingFetch(flaky, { sleep })("http://api/x");
    expect(response.status).toBe(200);
    expect(calls).toBe(2);
  });
});
