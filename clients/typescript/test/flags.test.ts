import { describe, expect, it } from "vitest";
import { inRollout, rolloutBucket } from "../src/flags.js";

describe("rollout", () => {
  it("matches the backend's FNV-1a buckets (README's example)", () => {
    expect(rolloutBucket("teamInvites", "user-1")).toBe(3689);
  });
  it("puts a subject in a rollout from its bucket up", () => {
    expect(inRollout("teamInvites", "user-1", 36.9)).toBe(true);
    expect(inRollout("teamInvites", "user-1", 36.89)).toBe(false);
    expect(inRollout("teamInvites", "user-1", 0)).toBe(false);
    expect(inRollout("teamInvites", "user-1", 100)).toBe(true);
  });
});
