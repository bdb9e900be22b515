// If-Match/ETag, idempotency keys and retries.

/** `"3"` for version 3 (what `If-Match` expects). */
export function etagOf(version: number): string {
  return `"${version}"`;
}

/** The version in an `ETag` (`"3"` or `W/"3"`), or `undefined`. */
export function versionOfEtag(etag: string | null | undefined): number | undefined {
  if (etag == null) return undefined;
  const match = /^(?:W\/)?"(\d+)"$/.exec(etag.trim());
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** A fresh `Idempotency-Key`: reuse it when retrying the same write. */
export function newIdempotencyKey(): string {
  return globalThis.crypto.randomUUID();
}

export interface RetryOptions {
  /** Further attempts after the first (default 2). */
  retries?: number;
  /** First backoff in ms, doubled each attempt, with jitter (default 200). */
  baseDelayMs?: number;
  /** Longest wait honoured from `Retry-After`, in ms (default 5000). */
  maxDelayMs?: number;
  /** Waits (tests replace it). */
  sleep?: (ms: number) => Promise<void>;
}

const RETRIED_STATUSES = new Set([429, 502, 503, 504]);

/**
 * A `fetch` that retries network errors and 429/502/503/504, honouring
 * `Retry-After`. Only requests that are safe to repeat are retried: GET and
 * HEAD, and writes carrying an `Idempotency-Key` (the backend replays the
 * first answer for the same key).
 */
export function retryingFetch(fetchImpl: typeof fetch, options: RetryOptions = {}): typeof fetch {
  const retries = options.retries ?? 2;
  const base = options.baseDelayMs ?? 200;
  const max = options.maxDelayMs ?? 5000;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  return async (input, init) => {
    const request = new Request(input, init);
    const repeatable =
      request.method === "GET" || request.method === "HEAD" || request.headers.has("idempotency-key");
    // Bodies are streams: read once, resent from memory.
    const body = request.body === null ? null : await request.arrayBuffer();
    for (let attempt = 0; ; attempt++) {
      const last = !repeatable || attempt >= retries;
      const copy = new Request(request, body === null ? {} : { body });
      try {
        const response = await fetchImpl(copy);
        if (last || !RETRIED_STATUSES.has(response.status)) return response;
        const after = Number(response.headers.get("retry-after"));
        const wait = Number.isFinite(after) && after > 0 ? after * 1000 : base * 2 ** attempt;
        await response.body?.cancel();
        await sleep(Math.min(max, wait) * (0.8 + Math.random() * 0.4));
      } catch (error) {
        if (last || request.signal.aborted) throw error;
        await sleep(Math.min(max, base * 2 ** attempt) * (0.8 + Math.random() * 0.4));
      }
    }
  };
}
