// @vitest-environment jsdom
import { act, renderHook, waitFor } from "@testing-library/react";
import type { ReactNode } from "react";
import { describe, expect, it } from "vitest";
import { createOnboardingClient } from "../src/client.js";
import { OnboardingProvider, useStep } from "../src/react.js";

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

/** A stand-in for one step's storage with versions, as the backend keeps them. */
function store(initial: { answers: Record<string, unknown> | null; version: number }) {
  const state = { ...initial };
  const writes: { ifMatch: string | null; key: string | null; body: unknown }[] = [];
  const counts = { reads: 0 };
  const view = () => ({ step: "profile", answers: state.answers, version: state.version, completed: false, flowVersion: 1 });
  const fetchImpl: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    if (request.method === "GET") {
      counts.reads += 1;
      return json(200, view(), { etag: `"${state.version}"` });
    }
    const body: { answers: Record<string, unknown> } = await request.json();
    const ifMatch = request.headers.get("if-match");
    writes.push({ ifMatch, key: request.headers.get("idempotency-key"), body });
    if (ifMatch !== `"${state.version}"`) {
      // As the backend answers: the stored version and answer travel with the 412.
      return json(
        412,
        {
          type: "https://onboarding.dev/problems/precondition-failed",
          title: "Precondition Failed",
          status: 412,
          detail: "another tab saved first",
          currentVersion: state.version,
          currentAnswers: state.answers,
          currentCompleted: false,
        },
        { etag: `"${state.version}"` },
      );
    }
    state.version += 1;
    state.answers = body.answers;
    return json(200, { ...view(), status: {} }, { etag: `"${state.version}"` });
  };
  return { state, writes, counts, fetchImpl };
}

function wrapper(fetchImpl: typeof fetch) {
  const client = createOnboardingClient({ baseUrl: "http://api.test", fetch: fetchImpl, retry: false });
  return ({ children }: { children: ReactNode }) => <OnboardingProvider client={client}>{children}</OnboardingProvider>;
}

describe("useStep", () => {
  it("saves with the ETag it read, then with the one it got back", async () => {
    const backend = store({ answers: { fullName: "Ada" }, version: 3 });
    const { result } = renderHook(() => useStep("profile", { autosaveMs: 0 }), { wrapper: wrapper(backend.fetchImpl) });
    await waitFor(() => expect(result.current.loading).toBe(false));
    expect(result.current.answers).toEqual({ fullName: "Ada" });
    act(() => result.current.setField("fullName", "Ada Lovelace"));
    await act(async () => {
      await result.current.save();
    });
    act(() => result.current.setField("jobRole", "engineering"));
    await act(async () => {
      await result.current.save();
    });
    expect(backend.writes.map((w) => w.ifMatch)).toEqual(['"3"', '"4"']);
    expect(new Set(backend.writes.map((w) => w.key)).size).toBe(2);
    expect(result.current.etag).toBe('"5"');
    expect(result.current.dirty).toBe(false);
  });

  it("shows a 412 as a conflict with both answers, and keeps mine on request", async () => {
    const backend = store({ answers: { fullName: "Ada" }, version: 1 });
    const { result } = renderHook(() => useStep("profile", { autosaveMs: 0 }), { wrapper: wrapper(backend.fetchImpl) });
    await waitFor(() => expect(result.current.loading).toBe(false));
    // Another tab saves meanwhile.
    backend.state.answers = { fullName: "Grace" };
    backend.state.version = 2;
    act(() => result.current.setField("fullName", "Mine"));
    await act(async () => {
      expect(await result.current.save()).toBeUndefined();
    });
    expect(result.current.conflict?.theirs).toEqual({ fullName: "Grace" });
    expect(result.current.conflict?.mine).toEqual({ fullName: "Mine" });
    // The 412 said what is stored: no read beyond the first.
    expect(backend.counts.reads).toBe(1);
    expect(result.current.conflict?.etag).toBe('"2"');
    await act(async () => {
      await result.current.resolveConflict("mine");
    });
    expect(result.current.conflict).toBeUndefined();
    expect(backend.state.answers).toEqual({ fullName: "Mine" });
    expect(backend.writes.at(-1)?.ifMatch).toBe('"2"');
  });

  it("takes theirs without writing", async () => {
    const backend = store({ answers: null, version: 0 });
    const { result } = renderHook(() => useStep("profile", { autosaveMs: 0 }), { wrapper: wrapper(backend.fetchImpl) });
    await waitFor(() => expect(result.current.loading).toBe(false));
    backend.state.answers = { fullName: "Grace" };
    backend.state.version = 1;
    act(() => result.current.setField("fullName", "Mine"));
    await act(async () => {
      await result.current.save();
    });
    await act(async () => {
      await result.current.resolveConflict("theirs");
    });
    expect(result.current.answers).toEqual({ fullName: "Grace" });
    expect(result.current.etag).toBe('"1"');
    expect(backend.writes).toHaveLength(1);
  });

  it("autosaves a draft after the delay", async () => {
    const backend = store({ answers: null, version: 0 });
    const { result } = renderHook(() => useStep("profile", { autosaveMs: 20 }), { wrapper: wrapper(backend.fetchImpl) });
    await waitFor(() => expect(result.current.loading).toBe(false));
    act(() => result.current.setField("fullName", "Dra"));
    act(() => result.current.setField("fullName", "Draft"));
    await waitFor(() => expect(backend.writes).toHaveLength(1));
    expect(backend.writes[0]?.body).toEqual({ answers: { fullName: "Draft" }, complete: false });
    await waitFor(() => expect(result.current.savedAt).toBeDefined());
  });
});
