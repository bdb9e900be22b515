"use client";
import Link from "next/link";
import { useParams, useRouter } from "next/navigation";
import { useState, type FormEvent } from "react";
import { ProblemError, type FlowStep, type JsonValue } from "@onboarding/client";
import { useFlow, useOnboardingClient, useStatus, useStep } from "@onboarding/client/react";
import { asList, asText, holds, prepareAnswers, summary, type Field } from "../../../lib/fields";

export default function StepPage() {
  const params = useParams<{ step: string }>();
  const flow = useFlow();
  const status = useStatus();

  if (flow.data === undefined) {
    return flow.error ? <p role="alert">Could not load the wizard: {flow.error.detail}</p> : <p>Loading…</p>;
  }
  const index = flow.data.steps.findIndex((step) => step.id === params.step);
  const step = flow.data.steps[index];
  if (step === undefined) return <p role="alert">There is no step “{params.step}”.</p>;
  return (
    <main>
      <p>
        Step {index + 1} of {flow.data.steps.length}
        {status.data !== undefined && ` · ${status.data.progress.percent}% done`}
        {status.data?.authenticated ? " · signed in" : " · not signed in"}
      </p>
      <StepForm key={step.id} step={step} authenticated={status.data?.authenticated === true} />
    </main>
  );
}

function StepForm({ step, authenticated }: { step: FlowStep; authenticated: boolean }) {
  const router = useRouter();
  const state = useStep(step.id);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    state.setAnswers(prepareAnswers(step.fields, state.answers));
    const saved = await state.save({ complete: true });
    if (saved !== undefined) router.push(saved.status.redirectTo);
  };

  const keepMine = async () => {
    const saved = await state.resolveConflict("mine");
    if (saved !== undefined) router.push(saved.status.redirectTo);
  };

  if (step.fields.length === 0) return <Review step={step} authenticated={authenticated} />;
  if (state.loading) return <p>Loading…</p>;

  const otherError =
    state.error !== undefined && !state.error.isConflict && !state.error.isValidation ? state.error : undefined;

  return (
    <form onSubmit={submit} noValidate>
      <h1>{step.title}</h1>
      {state.conflict && (
        <div role="alert" data-testid="conflict">
          <p>
            <strong>This step was saved in another tab</strong> after you opened it.
          </p>
          <p>Saved there: {summary(state.conflict.theirs)}</p>
          <p>Yours: {summary(state.conflict.mine)}</p>
          <button type="button" onClick={() => void state.resolveConflict("theirs")}>
            Use the saved answers
          </button>{" "}
          <button type="button" onClick={() => void keepMine()}>
            Keep mine
          </button>
        </div>
      )}
      {otherError && <p role="alert">{otherError.detail}</p>}
      {step.fields
        .filter((field) => holds(field.condition, state.answers))
        .map((field) => (
          <div key={field.name} style={{ margin: "1rem 0" }}>
            <FieldInput field={field} value={state.answers[field.name]} onChange={(value) => state.setField(field.name, value)} />
            {(state.fieldErrors[field.name] ?? []).map((error) => (
              <p key={error.code + error.pointer} role="alert" data-testid={`error-${field.name}`} style={{ color: "crimson" }}>
                {error.message}
              </p>
            ))}
          </div>
        ))}
      <button type="submit" disabled={state.saving || state.conflict !== undefined}>
        {step.optional ? "Save and continue (optional)" : "Save and continue"}
      </button>
      <p aria-live="polite">{state.saving ? "Saving…" : state.savedAt ? "Draft saved" : ""}</p>
    </form>
  );
}

function FieldInput(props: { field: Field; value: JsonValue | undefined; onChange: (value: JsonValue | undefined) => void }) {
  const { field, value, onChange } = props;
  const label = `${field.label}${field.required ? " *" : ""}`;
  const kind = field.kind;
  switch (kind.type) {
    case "boolean":
      return (
        <label>
          <input type="checkbox" name={field.name} checked={value === true} onChange={(event) => onChange(event.target.checked)} />{" "}
          {label}
        </label>
      );
    case "enum":
      return (
        <label>
          {label}{" "}
          <select name={field.name} value={asText(value)} onChange={(event) => onChange(event.target.value === "" ? undefined : event.target.value)}>
            <option value="">—</option>
            {kind.options.map((option) => (
              <option key={option} value={option}>
                {option}
              </option>
            ))}
          </select>
        </label>
      );
    case "multiEnum": {
      const chosen = asList(value);
      return (
        <fieldset>
          <legend>{label}</legend>
          {kind.options.map((option) => (
            <label key={option} style={{ marginRight: "1rem" }}>
              <input
                type="checkbox"
                name={`${field.name}.${option}`}
                checked={chosen.includes(option)}
                onChange={(event) =>
                  onChange(event.target.checked ? [...chosen, option] : chosen.filter((item) => item !== option))
                }
              />{" "}
              {option}
            </label>
          ))}
        </fieldset>
      );
    }
    case "emailList":
      return (
        <label>
          {label} (one per line)
          <br />
          <textarea name={field.name} value={asText(value)} onChange={(event) => onChange(event.target.value.split("\n"))} />
        </label>
      );
    case "number":
      return (
        <label>
          {label}{" "}
          <input
            type="number"
            name={field.name}
            value={asText(value)}
            onChange={(event) => onChange(event.target.value === "" ? undefined : Number(event.target.value))}
          />
        </label>
      );
    default: {
      const long = kind.type === "text" && kind.maxLength > 200;
      const type = kind.type === "email" ? "email" : kind.type === "url" ? "url" : "text";
      const placeholder = kind.type === "timezone" ? "Europe/Berlin" : undefined;
      return (
        <label>
          {label}{" "}
          {long ? (
            <textarea name={field.name} value={asText(value)} onChange={(event) => onChange(event.target.value)} />
          ) : (
            <input type={type} name={field.name} placeholder={placeholder} value={asText(value)} onChange={(event) => onChange(event.target.value)} />
          )}
        </label>
      );
    }
  }
}

function Review({ step, authenticated }: { step: FlowStep; authenticated: boolean }) {
  const client = useOnboardingClient();
  const router = useRouter();
  const [problem, setProblem] = useState<ProblemError>();
  const [busy, setBusy] = useState(false);

  const complete = async () => {
    setBusy(true);
    try {
      const done = await client.complete();
      router.push(done.status.redirectTo);
    } catch (caught) {
      if (!(caught instanceof ProblemError)) throw caught;
      setProblem(caught);
      setBusy(false);
    }
  };

  return (
    <section>
      <h1>{step.title}</h1>
      {authenticated ? (
        <button type="button" onClick={() => void complete()} disabled={busy}>
          Complete onboarding
        </button>
      ) : (
        <p>
          <Link href={`/sign-in?next=${encodeURIComponent(`/onboarding/${step.id}`)}`}>Sign in to finish</Link>: your
          answers so far come with you.
        </p>
      )}
      {problem && (
        <div role="alert">
          <p>{problem.detail}</p>
          <ul>
            {problem.errors.map((error) => (
              <li key={`${error.step ?? ""}${error.pointer}${error.code}`}>
                {error.step ? <Link href={`/onboarding/${error.step}`}>{error.step}</Link> : null} {error.pointer}: {error.message}
              </li>
            ))}
          </ul>
        </div>
      )}
    </section>
  );
}
