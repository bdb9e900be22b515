// React hooks over the client: status, flow, and one step with save, draft
// autosave and 412 recovery.
import { createContext, createElement, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import {
  createOnboardingClient,
  type Answers,
  type Flow,
  type JsonValue,
  type OnboardingClient,
  type Saved,
  type Status,
  type StepState,
} from "./client.js";
import { etagOf, newIdempotencyKey, versionOfEtag } from "./http.js";
import { ProblemError, type FieldError } from "./problem.js";

const ClientContext = createContext<OnboardingClient | null>(null);

export function OnboardingProvider(props: { client?: OnboardingClient; children?: ReactNode }) {
  const client = useMemo(() => props.client ?? createOnboardingClient(), [props.client]);
  return createElement(ClientContext.Provider, { value: client }, props.children);
}

export function useOnboardingClient(): OnboardingClient {
  const client = useContext(ClientContext);
  if (client === null) throw new Error("wrap the wizard in <OnboardingProvider>");
  return client;
}

export interface Loaded<T> {
  data: T | undefined;
  error: ProblemError | undefined;
  loading: boolean;
  reload: () => Promise<void>;
}

function useLoad<T>(load: () => Promise<T>, key: string): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<ProblemError>();
  const [loading, setLoading] = useState(true);
  const loadRef = useRef(load);
  loadRef.current = load;
  const reload = useCallback(async () => {
    setLoading(true);
    try {
      setData(await loadRef.current());
      setError(undefined);
    } catch (caught) {
      setError(caught instanceof ProblemError ? caught : new ProblemError({ type: "about:blank", title: "Error", status: 0, detail: String(caught) }));
    } finally {
      setLoading(false);
    }
  }, []);
  useEffect(() => {
    void reload();
  }, [reload, key]);
  return { data, error, loading, reload };
}

/** Where the caller stands (`GET /status`). */
export function useStatus(): Loaded<Status> {
  const client = useOnboardingClient();
  return useLoad(() => client.status(), "status");
}

/** The steps and fields that apply to the caller (`GET /flow`). */
export function useFlow(): Loaded<Flow> {
  const client = useOnboardingClient();
  return useLoad(() => client.flow(), "flow");
}

/** A 412: someone else saved this step since it was read. */
export interface StepConflict {
  /** The stored answers now (theirs), or null when the step has none. */
  theirs: Answers | null;
  /** What this tab tried to save. */
  mine: Answers;
  /** The current ETag, to overwrite theirs with `resolveConflict("mine")`. */
  etag: string;
  version: number;
  problem: ProblemError;
}

export interface UseStepOptions {
  /** Draft autosave delay after the last change, in ms (default 1000; 0 turns it off). */
  autosaveMs?: number;
}

export interface UseStep {
  loading: boolean;
  answers: Answers;
  /** The ETag of what this tab last read or saved. */
  etag: string;
  version: number;
  completed: boolean;
  dirty: boolean;
  saving: boolean;
  /** When the last save (draft or not) succeeded. */
  savedAt: Date | undefined;
  /** The last problem of a save or read (422s also fill `fieldErrors`). */
  error: ProblemError | undefined;
  fieldErrors: Record<string, FieldError[]>;
  conflict: StepConflict | undefined;
  setField: (field: string, value: JsonValue | undefined) => void;
  setAnswers: (answers: Answers) => void;
  /** Saves now; `complete: true` finishes the step. Resolves undefined when it failed (see `error`). */
  save: (options?: { complete?: boolean }) => Promise<Saved | undefined>;
  /** `theirs`: take the stored answers; `mine`: save this tab's over them. */
  resolveConflict: (choice: "theirs" | "mine") => Promise<Saved | undefined>;
  reload: () => Promise<void>;
}

function isAnswers(value: unknown): value is Answers {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** One step: its answers, saves with If-Match + Idempotency-Key, drafts, conflicts. */
export function useStep(step: string, options: UseStepOptions = {}): UseStep {
  const client = useOnboardingClient();
  const autosaveMs = options.autosaveMs ?? 1000;
  const [loading, setLoading] = useState(true);
  const [answers, setAnswersState] = useState<Answers>({});
  const [etag, setEtag] = useState(etagOf(0));
  const [completed, setCompleted] = useState(false);
  const [dirty, setDirty] = useState(false);
  const [saving, setSaving] = useState(false);
  const [savedAt, setSavedAt] = useState<Date>();
  const [error, setError] = useState<ProblemError>();
  const [fieldErrors, setFieldErrors] = useState<Record<string, FieldError[]>>({});
  const [conflict, setConflict] = useState<StepConflict>();

  // The latest values for callbacks that outlive a render.
  const current = useRef({ answers, etag, dirty, conflict, completed });
  current.current = { answers, etag, dirty, conflict, completed };
  const queue = useRef<Promise<unknown>>(Promise.resolve());
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  const adopt = useCallback((state: StepState) => {
    setAnswersState(isAnswers(state.view.answers) ? state.view.answers : {});
    setEtag(state.etag);
    setCompleted(state.view.completed);
    setDirty(false);
  }, []);

  const reload = useCallback(async () => {
    setLoading(true);
    try {
      adopt(await client.getStep(step));
      setError(undefined);
    } catch (caught) {
      if (caught instanceof ProblemError) setError(caught);
      else throw caught;
    } finally {
      setLoading(false);
    }
  }, [client, step, adopt]);

  useEffect(() => {
    void reload();
    return () => clearTimeout(timer.current);
  }, [reload]);

  /** The stored state after a 412: from the problem's members when it has them, else a GET. */
  const conflictFrom = useCallback(
    async (problem: ProblemError, mine: Answers): Promise<StepConflict> => {
      // The 412 carries the stored answer (`currentVersion`, `currentAnswers`): no GET needed.
      const version = problem.extension("currentVersion");
      const answers = problem.extension("currentAnswers");
      if (typeof version === "number" && answers !== undefined) {
        return { theirs: isAnswers(answers) ? answers : null, mine, etag: `"${version}"`, version, problem };
      }
      const fresh = await client.getStep(step);
      const theirs = fresh.view.answers;
      return { theirs: isAnswers(theirs) ? theirs : null, mine, etag: fresh.etag, version: fresh.version, problem };
    },
    [client, step],
  );

  const runSave = useCallback(
    (complete: boolean, ifMatch?: string): Promise<Saved | undefined> => {
      const next = queue.current.then(async () => {
        const mine = current.current.answers;
        const match = ifMatch ?? current.current.etag;
        setSaving(true);
        try {
          const { saved, etag: newEtag } = await client.saveStep(
            step,
            { answers: mine, complete },
            // The first write may send "0"; later ones the ETag last seen.
            { ifMatch: match, idempotencyKey: newIdempotencyKey() },
          );
          setEtag(newEtag);
          setCompleted(saved.completed);
          setSavedAt(new Date());
          setError(undefined);
          setFieldErrors({});
          setConflict(undefined);
          // Keep edits made while the save was in flight.
          if (current.current.answers === mine) setDirty(false);
          return saved;
        } catch (caught) {
          if (!(caught instanceof ProblemError)) throw caught;
          setError(caught);
          // A draft is saved as the user types: its field errors wait for the real save.
          if (caught.isValidation && complete) setFieldErrors(caught.fieldErrors(step));
          if (caught.isConflict) setConflict(await conflictFrom(caught, mine).catch(() => undefined));
          return undefined;
        } finally {
          setSaving(false);
        }
      });
      queue.current = next.catch(() => undefined);
      return next;
    },
    [client, step, conflictFrom],
  );

  const schedule = useCallback(() => {
    clearTimeout(timer.current);
    if (autosaveMs <= 0) return;
    timer.current = setTimeout(() => {
      const now = current.current;
      if (now.dirty && now.conflict === undefined && !now.completed) void runSave(false);
    }, autosaveMs);
  }, [autosaveMs, runSave]);

  const setAnswers = useCallback(
    (next: Answers) => {
      current.current.answers = next;
      current.current.dirty = true;
      setAnswersState(next);
      setDirty(true);
      schedule();
    },
    [schedule],
  );

  const setField = useCallback(
    (field: string, value: JsonValue | undefined) => {
      const next: Answers = { ...current.current.answers };
      if (value === undefined) delete next[field];
      else next[field] = value;
      setAnswers(next);
      setFieldErrors((errors) => {
        if (!(field in errors)) return errors;
        const rest = { ...errors };
        delete rest[field];
        return rest;
      });
    },
    [setAnswers],
  );

  const save = useCallback(
    (saveOptions: { complete?: boolean } = {}) => {
      clearTimeout(timer.current);
      return runSave(saveOptions.complete ?? true);
    },
    [runSave],
  );

  const resolveConflict = useCallback(
    async (choice: "theirs" | "mine") => {
      const open = current.current.conflict;
      if (open === undefined) return undefined;
      if (choice === "theirs") {
        current.current.answers = open.theirs ?? {};
        setAnswersState(open.theirs ?? {});
        setEtag(open.etag);
        setDirty(false);
        setConflict(undefined);
        setError(undefined);
        return undefined;
      }
      current.current.etag = open.etag;
      current.current.answers = open.mine;
      setEtag(open.etag);
      setAnswersState(open.mine);
      return runSave(true, open.etag);
    },
    [runSave],
  );

  return {
    loading,
    answers,
    etag,
    version: versionOfEtag(etag) ?? 0,
    completed,
    dirty,
    saving,
    savedAt,
    error,
    fieldErrors,
    conflict,
    setField,
    setAnswers,
    save,
    resolveConflict,
    reload,
  };
}
