// problem+json (RFC 9457) answers as typed values.

/** The slugs the backend answers with (`https://onboarding.dev/problems/<slug>`). */
export type ProblemSlug =
  | "bad-request"
  | "unauthorized"
  | "forbidden"
  | "not-found"
  | "method-not-allowed"
  | "conflict"
  | "precondition-failed"
  | "payload-too-large"
  | "unsupported-media-type"
  | "validation-failed"
  | "idempotency-key-reused"
  | "precondition-required"
  | "rate-limited"
  | "service-unavailable"
  | "internal";

/**
 * One field error of a 422. About answers: `step` names the step and
 * `pointer` is a JSON Pointer into its answers (`/slug`); without `step`,
 * `pointer` points into the request body.
 */
export interface FieldError {
  step?: string | null;
  pointer: string;
  code: string;
  message: string;
  limit?: number | null;
}

/** What a problem body may carry besides the RFC 9457 members. */
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  requestId?: string | null;
  errors?: FieldError[];
  /** Extension members (e.g. `currentVersion` and `currentAnswers` of a 412). */
  [extension: string]: unknown;
}

const PREFIX = "https://onboarding.dev/problems/";

/** An error answer of the API, or a network failure (`status` 0). */
export class ProblemError extends Error {
  readonly status: number;
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  readonly requestId: string | undefined;
  readonly errors: readonly FieldError[];
  /** Seconds from `Retry-After`, on 429 and 503. */
  readonly retryAfter: number | undefined;
  readonly body: ProblemBody;

  constructor(body: ProblemBody, retryAfter?: number) {
    super(`${body.status} ${body.title}: ${body.detail}`);
    this.name = "ProblemError";
    this.body = body;
    this.status = body.status;
    this.type = body.type;
    this.title = body.title;
    this.detail = body.detail;
    this.requestId = body.requestId ?? undefined;
    this.errors = body.errors ?? [];
    this.retryAfter = retryAfter;
  }

  /** The slug of `type` (`validation-failed`, `precondition-failed`, …). */
  get slug(): ProblemSlug | (string & {}) {
    return this.type.startsWith(PREFIX) ? this.type.slice(PREFIX.length) : this.type;
  }

  is(slug: ProblemSlug): boolean {
    return this.slug === slug;
  }

  /** A 422 that lists field errors (not, say, a reused idempotency key). */
  get isValidation(): boolean {
    return this.status === 422 && this.errors.length > 0;
  }

  /** A 412: another tab (or device) saved first. */
  get isConflict(): boolean {
    return this.status === 412;
  }

  /**
   * Field errors by field name: `{step: "organization", pointer: "/slug"}`
   * maps to `slug` (older `/steps/<step>/<field>` pointers too). Pass `step`
   * to keep only that step's errors (and those that name no step).
   */
  fieldErrors(step?: string): Record<string, FieldError[]> {
    const byField: Record<string, FieldError[]> = {};
    for (const error of this.errors) {
      const pointed = fieldOfPointer(error.pointer);
      const located = { step: error.step ?? pointed.step, field: pointed.field };
      if (step !== undefined && located.step !== undefined && located.step !== step) continue;
      (byField[located.field] ??= []).push(error);
    }
    return byField;
  }

  /** A readable extension member (e.g. `problem.extension("currentVersion")`). */
  extension(name: string): unknown {
    return this.body[name];
  }
}

/** Splits a field error's JSON Pointer into its step (if named) and field. */
export function fieldOfPointer(pointer: string): { step?: string; field: string } {
  const parts = pointer
    .split("/")
    .slice(1)
    .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"));
  if (parts[0] === "steps" && parts.length >= 3) {
    return { step: parts[1], field: parts[2] ?? "" };
  }
  if (parts[0] === "answers" && parts.length >= 2) {
    return { field: parts[1] ?? "" };
  }
  return { field: parts[0] ?? "" };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads `body` as a problem if it has the shape of one. */
export function asProblemBody(value: unknown, status: number): ProblemBody {
  if (isRecord(value) && typeof value.type === "string" && typeof value.detail === "string") {
    const errors = Array.isArray(value.errors)
      ? value.errors.filter(
          (error): error is FieldError =>
            isRecord(error) && typeof error.pointer === "string" && typeof error.code === "string",
        )
      : [];
    return {
      ...value,
      type: value.type,
      title: typeof value.title === "string" ? value.title : "",
      status: typeof value.status === "number" ? value.status : status,
      detail: value.detail,
      requestId: typeof value.requestId === "string" ? value.requestId : undefined,
      errors,
    };
  }
  return {
    type: "about:blank",
    title: `HTTP ${status}`,
    status,
    detail: typeof value === "string" && value.length > 0 ? value : `the API answered ${status}`,
  };
}

/** Parses `Retry-After` (seconds or an HTTP date) into seconds. */
export function retryAfterSeconds(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

/** The problem of a non-2xx `response` (reads its body). */
export async function problemOf(response: Response): Promise<ProblemError> {
  const text = await response.text().catch(() => "");
  let parsed: unknown = text;
  try {
    parsed = text.length > 0 ? JSON.parse(text) : "";
  } catch {
    // not JSON: keep the text
  }
  return new ProblemError(
    asProblemBody(parsed, response.status),
    retryAfterSeconds(response.headers.get("retry-after")),
  );
}

/** A failure to reach the API at all, as a problem with status 0. */
export function networkProblem(error: unknown): ProblemError {
  return new ProblemError({
    type: "about:blank",
    title: "Network error",
    status: 0,
    detail: error instanceof Error ? error.message : String(error),
  });
}
