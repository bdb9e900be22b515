import { describe, expect, it } from "vitest";
import { fieldOfPointer, problemOf, ProblemError } from "../src/problem.js";

const problemResponse = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });

describe("problems", () => {
  it("reads a 422 with field errors keyed by field, whatever the pointer convention", async () => {
    const problem = await problemOf(
      problemResponse(422, {
        type: "https://onboarding.dev/problems/validation-failed",
        title: "Unprocessable Entity",
        status: 422,
        detail: "2 answers are invalid",
        requestId: "req-1",
        errors: [
          { pointer: "/fullName", code: "required", message: "required" },
          { step: "organization", pointer: "/slug", code: "taken", message: "this URL handle is taken" },
          { pointer: "/invites/2", code: "invalid_email", message: "not an e-mail address" },
        ],
      }),
    );
    expect(problem).toBeInstanceOf(ProblemError);
    expect(problem.slug).toBe("validation-failed");
    expect(problem.isValidation).toBe(true);
    expect(problem.requestId).toBe("req-1");
    expect(Object.keys(problem.fieldErrors())).toEqual(["fullName", "slug", "invites"]);
    // Only the organization step's errors (and those that name no step).
    expect(problem.fieldErrors("profile").slug).toBeUndefined();
    expect(problem.fieldErrors("organization").slug?.[0]?.code).toBe("taken");
  });

  it("tells an idempotency-key reuse (no errors[]) from field errors", async () => {
    const problem = await problemOf(
      problemResponse(422, {
        type: "https://onboarding.dev/problems/idempotency-key-reused",
        title: "Unprocessable Entity",
        status: 422,
        detail: "this Idempotency-Key was used for a different request",
      }),
    );
    expect(problem.isValidation).toBe(false);
    expect(problem.fieldErrors()).toEqual({});
  });

  it("keeps Retry-After and extension members", async () => {
    const problem = await problemOf(
      problemResponse(
        412,
        {
          type: "https://onboarding.dev/problems/precondition-failed",
          title: "Precondition Failed",
          status: 412,
          detail: "stale",
          currentVersion: 4,
          currentAnswers: { fullName: "Ada" },
        },
        { "retry-after": "2" },
      ),
    );
    expect(problem.isConflict).toBe(true);
    expect(problem.retryAfter).toBe(2);
    expect(problem.extension("currentVersion")).toBe(4);
  });

  it("turns a non-problem body into a problem", async () => {
    const problem = await problemOf(new Response("<html>bad gateway</html>", { status: 502 }));
    expect(problem.status).toBe(502);
    expect(problem.type).toBe("about:blank");
    expect(problem.detail).toContain("bad gateway");
  });

  it("splits pointers", () => {
    expect(fieldOfPointer("/fullName")).toEqual({ field: "fullName" });
    expect(fieldOfPointer("/steps/team/invites/0")).toEqual({ step: "team", field: "invites" });
    expect(fieldOfPointer("/answers/a~1b")).toEqual({ field: "a/b" });
    expect(fieldOfPointer("")).toEqual({ field: "" });
  });
});
