// The backend's percentage rollout (README: Rollout hash), for the Next.js app.

/** The bucket (0..9999) of a subject for a flag: on when `bucket < round(p * 100)`. */
export function rolloutBucket(flagKey: string, subjectId: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(`${flagKey}:${subjectId}`)) {
    h = Math.imul(h ^ b, 0x01000193) >>> 0;
  }
  return h % 10000;
}
// e.g. rolloutBucket("teamInvites", "user-1") === 3689

/** Whether a subject is in a rollout of `percent` % (0..100, two decimals). */
export function inRollout(flagKey: string, subjectId: string, percent: number): boolean {
  return rolloutBucket(flagKey, subjectId) < Math.round(percent * 100);
}
