// Client-side validation with the step's JSON Schema (draft 2020-12) and
// the server's normalisation: every string trimmed (JavaScript's trim) and
// NFC-normalised; null, and "" for string fields, the same as absent.
import { Ajv2020, type ErrorObject } from "ajv/dist/2020.js";
import type { Answers, FieldError, FlowStep, JsonValue } from "@onboarding/client";

const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false });

function normalizeValue(value: JsonValue): JsonValue {
  if (typeof value === "string") return value.trim().normalize("NFC");
  if (Array.isArray(value)) return value.map(normalizeValue);
  if (value !== null && typeof value === "object") {
    const out: { [key: string]: JsonValue } = {};
    for (const [key, inner] of Object.entries(value)) out[key] = normalizeValue(inner);
    return out;
  }
  return value;
}

/** The answers as the server will store them. */
export function normalizeAnswers(answers: Answers): Answers {
  const out: Answers = {};
  for (const [field, value] of Object.entries(answers)) {
    const normalized = normalizeValue(value);
    if (normalized === null || normalized === "") continue;
    out[field] = normalized;
  }
  return out;
}

type Validator = ReturnType<typeof ajv.compile>;
const compiled = new WeakMap<object, Validator>();

function validatorFor(schema: { [key: string]: unknown }): Validator {
  let validate = compiled.get(schema);
  if (validate === undefined) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

function fieldOf(error: ErrorObject): string {
  if (error.keyword === "required" && typeof error.params.missingProperty === "string") {
    return error.params.missingProperty;
  }
  if (error.keyword === "additionalProperties" && typeof error.params.additionalProperty === "string") {
    return error.params.additionalProperty;
  }
  return error.instancePath.split("/")[1] ?? "";
}

function messageOf(error: ErrorObject): string {
  switch (error.keyword) {
    case "required":
      return "Required";
    case "pattern":
      return "Not in the expected format";
    case "enum":
      return "Pick one of the options";
    case "uniqueItems":
      return "Listed twice";
    default:
      return error.message ?? "Invalid";
  }
}

/** Field errors by field name, from the step's schema (drafts: `draftSchema`). */
export function validateStep(step: FlowStep, answers: Answers, draft = false): Record<string, FieldError[]> {
  const schema = draft ? step.draftSchema : step.schema;
  const validate = validatorFor(schema);
  const byField: Record<string, FieldError[]> = {};
  if (!validate(normalizeAnswers(answers))) {
    for (const error of validate.errors ?? []) {
      const field = fieldOf(error);
      // One message per field is enough (anyOf branches repeat themselves).
      if (byField[field] !== undefined) continue;
      byField[field] = [{ pointer: `/${field}`, code: error.keyword, message: messageOf(error) }];
    }
  }
  // Invitations are unique case-insensitively on the server; uniqueItems is
  // case-sensitive, so check it here too.
  for (const [field, value] of Object.entries(answers)) {
    if (!Array.isArray(value) || byField[field] !== undefined) continue;
    const seen = new Set<string>();
    for (const item of value) {
      if (typeof item !== "string" || !item.includes("@")) continue;
      const key = item.trim().normalize("NFC").toLowerCase();
      if (seen.has(key)) {
        byField[field] = [{ pointer: `/${field}`, code: "duplicate_item", message: `${item.trim()} is listed twice` }];
        break;
      }
      seen.add(key);
    }
  }
  return byField;
}
