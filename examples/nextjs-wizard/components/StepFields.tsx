"use client";
// A step's form, rendered from its JSON Schema (types, enums, lengths) with
// the labels and order of the flow's field definitions.
import type { Answers, FieldError, FlowStep, JsonValue } from "@onboarding/client";

type Schema = { [key: string]: unknown };

function isSchema(value: unknown): value is Schema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The property's schema without the optional-field wrapper (`anyOf` with null / ""). */
function propertySchema(step: FlowStep, field: string): Schema {
  const properties = step.schema.properties;
  const raw = isSchema(properties) ? properties[field] : undefined;
  if (!isSchema(raw)) return {};
  if (Array.isArray(raw.anyOf)) {
    const real = raw.anyOf.find((option) => isSchema(option) && option.type !== "null" && !("const" in option));
    if (isSchema(real)) return real;
  }
  return raw;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];
}

/** Unticked checkboxes are answers too: `false`, not absent. */
export function withBooleanDefaults(step: FlowStep, answers: Answers): Answers {
  const out: Answers = { ...answers };
  for (const field of step.fields) {
    if (propertySchema(step, field.name).type === "boolean" && out[field.name] === undefined) out[field.name] = false;
  }
  return out;
}

export function StepFields(props: {
  step: FlowStep;
  answers: Answers;
  errors: Record<string, FieldError[]>;
  onChange: (field: string, value: JsonValue | undefined) => void;
}) {
  const { step, answers, errors, onChange } = props;
  return (
    <>
      {step.fields.map((field) => {
        const schema = propertySchema(step, field.name);
        const value = answers[field.name];
        const id = `field-${field.name}`;
        const fieldErrors = errors[field.name] ?? [];
        const invalid = fieldErrors.length > 0;
        const items = isSchema(schema.items) ? schema.items : undefined;
        let input: React.ReactNode;
        if (schema.type === "boolean") {
          input = (
            <input
              id={id}
              name={field.name}
              type="checkbox"
              checked={value === true}
              onChange={(event) => onChange(field.name, event.target.checked)}
            />
          );
        } else if (schema.type === "string" && Array.isArray(schema.enum)) {
          input = (
            <select
              id={id}
              name={field.name}
              aria-invalid={invalid}
              value={typeof value === "string" ? value : ""}
              onChange={(event) => onChange(field.name, event.target.value === "" ? undefined : event.target.value)}
            >
              <option value="">Choose…</option>
              {strings(schema.enum).map((option) => (
                <option key={option} value={option}>
                  {option}
                </option>
              ))}
            </select>
          );
        } else if (schema.type === "array" && items !== undefined && Array.isArray(items.enum)) {
          const chosen = strings(value);
          input = (
            <span id={id} role="group" aria-labelledby={`${id}-label`}>
              {strings(items.enum).map((option) => (
                <label key={option} className="choice">
                  <input
                    type="checkbox"
                    name={field.name}
                    value={option}
                    checked={chosen.includes(option)}
                    onChange={(event) =>
                      onChange(
                        field.name,
                        event.target.checked ? [...chosen, option] : chosen.filter((item) => item !== option),
                      )
                    }
                  />
                  {option}
                </label>
              ))}
            </span>
          );
        } else if (schema.type === "array") {
          // A list of strings (e-mail addresses): one per line.
          input = (
            <textarea
              id={id}
              name={field.name}
              aria-invalid={invalid}
              rows={4}
              value={strings(value).join("\n")}
              onChange={(event) => {
                const lines = event.target.value.split("\n");
                onChange(field.name, lines.length === 1 && lines[0] === "" ? undefined : lines);
              }}
            />
          );
        } else {
          const long = typeof schema.maxLength === "number" && schema.maxLength > 200;
          const common = {
            id,
            name: field.name,
            "aria-invalid": invalid,
            value: typeof value === "string" ? value : "",
            maxLength: typeof schema.maxLength === "number" ? schema.maxLength : undefined,
          };
          input = long ? (
            <textarea {...common} rows={3} onChange={(event) => onChange(field.name, event.target.value)} />
          ) : (
            <input {...common} type="text" onChange={(event) => onChange(field.name, event.target.value)} />
          );
        }
        return (
          <div key={field.name} className="field" data-field={field.name}>
            <label id={`${id}-label`} htmlFor={id}>
              {field.label}
              {field.required ? " *" : ""}
            </label>
            {input}
            {fieldErrors.map((error) => (
              <p key={`${error.pointer}-${error.code}`} className="field-error" role="alert">
                {error.message}
              </p>
            ))}
          </div>
        );
      })}
    </>
  );
}
