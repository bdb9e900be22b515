"use client";
// One wizard step, rendered from GET /flow; the last step ("review") completes.
import { useParams, useRouter } from "next/navigation";
import { useEffect, useState } from "react";
import { fieldOfPointer, ProblemError, type Answers, type FieldError, type FlowStep, type JsonValue } from "@onboarding/client";
import { useFlow, useOnboardingClient, useStatus, useStep } from "@onboarding/client/react";
import { StepFields, withBooleanDefaults } from "../../../components/StepFields";
import { useWizardState } from "../../../components/WizardState";
import { track } from "../../../lib/track";
import { normalizeAnswers, validateStep } from "../../../lib/validate";

export default function StepPage() {
  const { step: stepId } = useParams<{ step: string }>();
  const flow = useFlow();
  const status = useStatus();
  if (flow.error) return <Problem problem={flow.error} />;
  if (flow.data === undefined) return <p>Loading…</p>;
  const steps = flow.data.steps;
  const index = steps.findIndex((step) => step.id === stepId);
  const step = steps[index];
  if (step === undefined) return <p>There is no step “{stepId}”. <a href="/onboarding">Back to the wizard</a></p>;
  const next = steps[index + 1];
  return (
    <section>
      <ol className="steps">
        {steps.map((s) => (
          <li key={s.id}>
            <a href={`/onboarding/${s.id}`} aria-current={s.id === stepId ? "step" : undefined}>
              {s.title}
              {status.data?.completedSteps.includes(s.id) ? " ✓" : ""}
            </a>
          </li>
        ))}
      </ol>
      <h1>{step.title}</h1>
      {step.fields.length === 0 ? (
        <Review steps={steps} authenticated={status.data?.authenticated === true} />
      ) : (
        <StepForm key={step.id} step={step} nextHref={next ? `/onboarding/${next.id}` : "/onboarding"} onSaved={status.reload} />
      )}
    </section>
  );
}

function Problem({ problem }: { problem: ProblemError }) {
  return (
    <div className="error" role="alert" data-testid="problem">
      {problem.status === 503 || problem.status === 0
        ? "The onboarding service is unavailable right now; try again in a moment."
        : problem.detail}
    </div>
  );
}

function summary(answers: Answers | null): string {
  if (answers === null) return "nothing saved";
  return Object.entries(answers)
    .map(([field, value]) => `${field}: ${Array.isArray(value) ? value.join(", ") : String(value)}`)
    .join("; ");
}

function StepForm(props: { step: FlowStep; nextHref: string; onSaved: () => Promise<void> }) {
  const { step } = props;
  const router = useRouter();
  const state = useStep(step.id);
  const { serverErrors, clearStep } = useWizardState();
  const [clientErrors, setClientErrors] = useState<Record<string, FieldError[]>>({});
  useEffect(() => track("step_viewed", step.id), [step.id]);
  const errors = { ...(serverErrors[step.id] ?? {}), ...state.fieldErrors, ...clientErrors };

  const change = (field: string, value: JsonValue | undefined) => {
    setClientErrors((current) => {
      const rest = { ...current };
      delete rest[field];
      return rest;
    });
    state.setField(field, value);
  };

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const answers = normalizeAnswers(withBooleanDefaults(step, state.answers));
    const found = validateStep(step, answers);
    setClientErrors(found);
    if (Object.keys(found).length > 0) {
      track("validation_failed", step.id, { fields: Object.keys(found).join(",") });
      return;
    }
    state.setAnswers(answers);
    const saved = await state.save({ complete: true });
    if (saved !== undefined) {
      track("step_completed", step.id);
      clearStep(step.id);
      await props.onSaved();
      router.push(props.nextHref);
    }
  };

  if (state.loading) return <p>Loading…</p>;
  return (
    <form onSubmit={submit} noValidate data-testid={`step-${step.id}`}>
      {state.conflict && (
        <div className="banner" role="alert" data-testid="conflict">
          <p>
            <strong>This step was saved in another tab or on another device</strong> after you opened it.
          </p>
          <p>Saved there: {summary(state.conflict.theirs)}</p>
          <p>Yours: {summary(state.conflict.mine)}</p>
          <button type="button" onClick={() => void state.resolveConflict("theirs")}>
            Use the saved answers
          </button>{" "}
          <button type="button" onClick={() => void state.resolveConflict("mine")}>
            Keep mine
          </button>
        </div>
      )}
      {state.error && !state.conflict && !state.error.isValidation && <Problem problem={state.error} />}
      <StepFields step={step} answers={state.answers} errors={errors} onChange={change} />
      <p className="muted" data-testid="save-state">
        {state.saving ? "Saving…" : state.dirty ? "Unsaved changes" : state.savedAt ? "Saved" : ""}
      </p>
      <button type="submit" disabled={state.saving}>
        Save and continue
      </button>
    </form>
  );
}

function Review(props: { steps: FlowStep[]; authenticated: boolean }) {
  const client = useOnboardingClient();
  const router = useRouter();
  const { setServerErrors } = useWizardState();
  const [problem, setProblem] = useState<ProblemError>();
  const [busy, setBusy] = useState(false);

  if (!props.authenticated) {
    return (
      <p>
        Your answers are kept as a draft. <a href="/sign-in?next=/onboarding/review">Sign in to finish</a>; they
        move to your account.
      </p>
    );
  }

  const complete = async () => {
    setBusy(true);
    try {
      const done = await client.complete();
      track("flow_completed");
      if (done.organizationId !== null) {
        // The organization onboarding created becomes the active one (Clerk: setActive).
        await fetch("/api/auth/organization", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ organizationId: done.organizationId }),
        });
      }
      window.location.assign(done.status.redirectTo);
    } catch (caught) {
      if (!(caught instanceof ProblemError)) throw caught;
      setProblem(caught);
      if (caught.isValidation) {
        // `{step, pointer: "/<field>"}`: show each error under its field, on its step.
        const byStep: Record<string, Record<string, FieldError[]>> = {};
        for (const error of caught.errors) {
          const pointed = fieldOfPointer(error.pointer);
          const stepId = error.step ?? pointed.step;
          const field = pointed.field;
          if (stepId === undefined || stepId === null) continue;
          ((byStep[stepId] ??= {})[field] ??= []).push(error);
        }
        setServerErrors(byStep);
        const first = props.steps.find((step) => step.id in byStep);
        if (first !== undefined) router.push(`/onboarding/${first.id}`);
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <div>
      {problem && <Problem problem={problem} />}
      <p>Everything is in place. Completing creates your organization and sends the invitations.</p>
      <button type="button" onClick={() => void complete()} disabled={busy}>
        Complete onboarding
      </button>
    </div>
  );
}
