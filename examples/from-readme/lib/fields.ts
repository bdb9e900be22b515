// Rendering helpers for the fields of GET /api/onboarding/flow.
import type { Answers, components, JsonValue } from "@onboarding/client";

export type Field = components["schemas"]["FieldDefinition"];
export type Condition = components["schemas"]["Condition"];

/** Whether a field's `condition` holds for this step's answers (flags: the flow already applied them). */
export function holds(condition: Condition | null | undefined, answers: Answers): boolean {
  if (condition === null || condition === undefined) return true;
  if ("equals" in condition) return answers[condition.field] === condition.equals;
  if ("in" in condition) return condition.in.some((value) => answers[condition.field] === value);
  if ("not" in condition) return !holds(condition.not, answers);
  if ("all" in condition) return condition.all.every((inner) => holds(inner, answers));
  if ("any" in condition) return condition.any.some((inner) => holds(inner, answers));
  return true;
}

function normalize(value: JsonValue): JsonValue {
  if (typeof value === "string") return value.trim().normalize("NFC");
  if (Array.isArray(value)) return value.map(normalize).filter((item) => item !== "" && item !== null);
  return value;
}

/**
 * What a completed save sends: strings trimmed and NFC-normalized, `""`,
 * `null` and empty lists dropped, unanswered booleans `false`, and fields
 * whose condition does not hold left out (README: Validate in the browser).
 */
export function prepareAnswers(fields: Field[], answers: Answers): Answers {
  const out: Answers = {};
  for (const field of fields) {
    if (!holds(field.condition, answers)) continue;
    const raw = answers[field.name];
    if (raw === undefined || raw === null) {
      if (field.kind.type === "boolean") out[field.name] = false;
      continue;
    }
    const value = normalize(raw);
    if (value === "" || (Array.isArray(value) && value.length === 0)) continue;
    out[field.name] = value;
  }
  return out;
}

export function asText(value: JsonValue | undefined): string {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.map((item) => asText(item)).join("\n");
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

export function asList(value: JsonValue | undefined): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];
}

export function summary(answers: Answers | null): string {
  if (answers === null) return "(nothing)";
  const parts = Object.entries(answers).map(([name, value]) => `${name}: ${asText(value).replace(/\n/g, ", ")}`);
  return parts.length === 0 ? "(empty)" : parts.join("; ");
}
