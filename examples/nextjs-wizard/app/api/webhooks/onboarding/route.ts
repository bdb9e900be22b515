// The receiver of the backend's outbox (README: Outbox, webhooks and
// identity-provider sync): OUTBOUND_WEBHOOK_URLS points here, and
// ONBOARDING_WEBHOOK_SECRET is the backend's OUTBOUND_WEBHOOK_SECRET.
import { Webhook } from "standardwebhooks";

export async function POST(request: Request): Promise<Response> {
  const secret = process.env.ONBOARDING_WEBHOOK_SECRET;
  if (secret === undefined) return new Response("ONBOARDING_WEBHOOK_SECRET is unset", { status: 503 });
  let event: unknown;
  try {
    // Throws when the signature is forged or the timestamp stale.
    event = new Webhook(secret).verify(await request.text(), Object.fromEntries(request.headers));
  } catch {
    return new Response("invalid signature", { status: 400 });
  }
  // Deduplicate on `webhook-id`: a retry repeats it.
  console.log("onboarding event", request.headers.get("webhook-id"), event);
  return new Response(null, { status: 204 });
}
