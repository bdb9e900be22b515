// A thin typed client over openapi-fetch: every method returns the typed
// body of the success answer or throws a `ProblemError`.
import createClient, { type Client } from "openapi-fetch";
import type { components, operations, paths } from "./openapi.js";
import { etagOf, newIdempotencyKey, retryingFetch, versionOfEtag, type RetryOptions } from "./http.js";
import { networkProblem, problemOf, ProblemError } from "./problem.js";

type Json<T> = T extends { content: { "application/json": infer Body } } ? Body : never;
type Answer<Op extends keyof operations, Code extends keyof operations[Op]["responses"]> = Json<
  operations[Op]["responses"][Code]
>;

/** A JSON value, as answers hold them. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
/** One step's answers by field name. */
export type Answers = { [field: string]: JsonValue };

export type Status = Answer<"getStatus", 200>;
export type OnboardingState = Status["state"];
export type Flow = Answer<"getFlow", 200>;
export type FlowStep = Flow["steps"][number];
export type StepView = Answer<"getStep", 200>;
export type Saved = Answer<"saveStep", 200>;
export type Completed = Answer<"completeOnboarding", 200>;
export type Merged = Answer<"mergeSession", 200>;
export type SessionStarted = Answer<"startSession", 201>;
export type Funnel = Answer<"getFunnel", 200>;
export type FunnelQuery = NonNullable<operations["getFunnel"]["parameters"]["query"]>;
export type AiPreferences = Answer<"getAiPreferences", 200>;
export type FunnelEvent = components["schemas"]["Event"];
export type FunnelEventType = components["schemas"]["EventType"];

/**
 * An organization's AI policy (`GET /api/onboarding/ai/policy`, for its
 * admins): when `aiAllowed` is false, AI is off for every member.
 */
export type AiPolicy = components["schemas"]["OrganizationAiPolicy"];
/** What an admin sets (`PUT /api/onboarding/ai/policy`). */
export type AiPolicyChange = components["schemas"]["PolicyBody"];

/** Where the backend serves the organization AI policy (override with `aiPolicyPath`). */
export const DEFAULT_AI_POLICY_PATH = "/api/onboarding/ai/policy";

/** A step as read, with the `ETag` to send back in `If-Match`. */
export interface StepState {
  view: StepView;
  etag: string;
  version: number;
}

export interface SaveOptions {
  /** The `ETag` last read (`"0"` or omitted for a first write; `*` for "an answer exists"). */
  ifMatch?: string;
  /** Reuse it to retry the same save; a fresh one by default. */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

export interface OnboardingClientOptions {
  /** The API's origin; empty (default) calls the page's own origin, e.g. through the Next.js proxy. */
  baseUrl?: string;
  fetch?: typeof fetch;
  /** Extra headers on every request (e.g. `authorization` from a server component). */
  headers?: Record<string, string>;
  /** `include` by default, so the session and provider cookies travel. */
  credentials?: RequestCredentials;
  /** Retries of network errors, 429 and 5xx; `false` to turn them off. */
  retry?: RetryOptions | false;
  /**
   * On a 401 (a session cookie the server no longer accepts), start a new
   * anonymous session once and repeat the request. Default true.
   */
  recoverSession?: boolean;
  /** Path of the organization AI policy route (default `DEFAULT_AI_POLICY_PATH`). */
  aiPolicyPath?: string;
}

export type OnboardingClient = ReturnType<typeof createOnboardingClient>;

export function createOnboardingClient(options: OnboardingClientOptions = {}) {
  const baseFetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
  const withRetries = options.retry === false ? baseFetch : retryingFetch(baseFetch, options.retry ?? {});
  const credentials = options.credentials ?? "include";
  const baseUrl = options.baseUrl ?? (typeof window === "undefined" ? "http://127.0.0.1:3001" : window.location.origin);
  const recover = options.recoverSession ?? true;
  const headers = options.headers ?? {};
  const aiPolicyUrl = `${baseUrl}${options.aiPolicyPath ?? DEFAULT_AI_POLICY_PATH}`;

  const startSessionRaw = () =>
    withRetries(new Request(`${baseUrl}/api/onboarding/session`, { method: "POST", credentials, headers }));

  // A 401 from a rejected session cookie: POST /session replaces it (the
  // cookie is HttpOnly, so the page cannot drop it), then the call is repeated.
  // Calls refused at the same moment share one POST /session: each of their
  // own would start a session of its own, and the browser would keep only the
  // last cookie, with the other calls' repeated saves under sessions it lost.
  let restarting: Promise<Response> | undefined;
  const restartSession = (): Promise<Response> => {
    restarting ??= startSessionRaw().finally(() => {
      restarting = undefined;
    });
    return restarting;
  };
  const recovering: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    const body = request.body === null ? null : await request.arrayBuffer();
    const send = () => withRetries(new Request(request, body === null ? {} : { body }));
    const response = await send();
    if (!recover || response.status !== 401 || new URL(request.url).pathname.endsWith("/session")) {
      return response;
    }
    const started = await restartSession();
    if (started.status !== 200 && started.status !== 201) return response;
    return send();
  };

  const api: Client<paths> = createClient<paths>({ baseUrl, fetch: recovering, credentials, headers });

  async function run<T>(
    call: Promise<{ data?: T; error?: unknown; response: Response }>,
  ): Promise<{ data: T; response: Response }> {
    let result: { data?: T; error?: unknown; response: Response };
    try {
      result = await call;
    } catch (error) {
      if (error instanceof ProblemError) throw error;
      throw networkProblem(error);
    }
    if (!result.response.ok || result.data === undefined) {
      throw await problemOf(result.response.bodyUsed ? rebuild(result) : result.response);
    }
    return { data: result.data, response: result.response };
  }

  return {
    /** The raw typed openapi-fetch client, for routes without a helper. */
    api,
    baseUrl,

    async status(): Promise<Status> {
      return (await run(api.GET("/api/onboarding/status"))).data;
    },

    async flow(): Promise<Flow> {
      return (await run(api.GET("/api/onboarding/flow"))).data;
    },

    async getStep(step: string, signal?: AbortSignal): Promise<StepState> {
      const { data, response } = await run(
        api.GET("/api/onboarding/steps/{step}", { params: { path: { step } }, signal }),
      );
      const etag = response.headers.get("etag") ?? etagOf(data.version);
      return { view: data, etag, version: versionOfEtag(etag) ?? data.version };
    },

    /** Saves a draft (`complete: false`) or completes a step, with `If-Match` and an `Idempotency-Key`. */
    async saveStep(
      step: string,
      body: { answers: Answers; complete: boolean },
      options: SaveOptions = {},
    ): Promise<{ saved: Saved; etag: string; version: number }> {
      const header: operations["saveStep"]["parameters"]["header"] = {
        "Idempotency-Key": options.idempotencyKey ?? newIdempotencyKey(),
      };
      if (options.ifMatch !== undefined) header["If-Match"] = options.ifMatch;
      const { data, response } = await run(
        api.PUT("/api/onboarding/steps/{step}", {
          params: { path: { step }, header },
          body,
          signal: options.signal,
        }),
      );
      const etag = response.headers.get("etag") ?? etagOf(data.version);
      return { saved: data, etag, version: versionOfEtag(etag) ?? data.version };
    },

    async startSession(): Promise<SessionStarted> {
      const response = await startSessionRaw().catch((error: unknown) => {
        throw networkProblem(error);
      });
      if (!response.ok) throw await problemOf(response);
      const body: SessionStarted = await response.json();
      return body;
    },

    async mergeSession(idempotencyKey: string = newIdempotencyKey()): Promise<Merged> {
      return (
        await run(
          api.POST("/api/onboarding/session/merge", {
            params: { header: { "Idempotency-Key": idempotencyKey } },
          }),
        )
      ).data;
    },

    async complete(idempotencyKey: string = newIdempotencyKey()): Promise<Completed> {
      return (
        await run(
          api.POST("/api/onboarding/complete", {
            params: { header: { "Idempotency-Key": idempotencyKey } },
          }),
        )
      ).data;
    },

    /**
     * Records funnel events (`POST /events`, up to 100). Events of a signed-in
     * caller count towards their active organization's funnel.
     */
    async track(events: FunnelEvent[]): Promise<void> {
      await run(api.POST("/api/onboarding/events", { body: { events } }).then((result) => ({ ...result, data: result.data ?? {} })));
    },

    async funnel(query: FunnelQuery = {}): Promise<Funnel> {
      return (await run(api.GET("/api/onboarding/analytics/funnel", { params: { query } }))).data;
    },

    /**
     * The organization's AI policy. `undefined` when the backend serves no
     * such route (404, an older backend), so an admin page can say so.
     */
    async aiPolicy(): Promise<AiPolicy | undefined> {
      const response = await recovering(aiPolicyUrl, {
        credentials,
        headers,
      });
      if (response.status === 404) return undefined;
      if (!response.ok) throw await problemOf(response);
      const body: AiPolicy = await response.json();
      return body;
    },

    async setAiPolicy(policy: AiPolicyChange, ifMatch?: string): Promise<AiPolicy | undefined> {
      const header: Record<string, string> = {
        ...headers,
        "content-type": "application/json",
        "idempotency-key": newIdempotencyKey(),
      };
      if (ifMatch !== undefined) header["if-match"] = ifMatch;
      const response = await recovering(aiPolicyUrl, {
        method: "PUT",
        credentials,
        headers: header,
        body: JSON.stringify(policy),
      });
      if (response.status === 404) return undefined;
      if (!response.ok) throw await problemOf(response);
      const body: AiPolicy = await response.json();
      return body;
    },
  };
}

// openapi-fetch has read the body of an error answer; rebuild a response
// from what it parsed so the problem keeps its members.
function rebuild(result: { error?: unknown; response: Response }): Response {
  const body = typeof result.error === "string" ? result.error : JSON.stringify(result.error ?? "");
  return new Response(body, { status: result.response.status, headers: result.response.headers });
}
