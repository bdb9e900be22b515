// Funnel events, best effort: a lost event must never disturb the wizard.
import type { FunnelEventType } from "@onboarding/client";
import { client } from "./client";

export function track(type: FunnelEventType, step?: string, properties?: { [key: string]: string | number }) {
  client.track([{ type, step: step ?? null, properties: properties ?? {} }]).catch(() => undefined);
}
