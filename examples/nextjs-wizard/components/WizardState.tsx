"use client";
// Field errors the server reported for other steps (a 422 of POST /complete
// points at `/steps/<step>/<field>`), kept while the user moves between steps.
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";
import type { FieldError } from "@onboarding/client";

type ByStep = Record<string, Record<string, FieldError[]>>;

const Context = createContext<{
  serverErrors: ByStep;
  setServerErrors: (errors: ByStep) => void;
  clearStep: (step: string) => void;
} | null>(null);

export function WizardState({ children }: { children: ReactNode }) {
  const [serverErrors, setServerErrors] = useState<ByStep>({});
  const clearStep = useCallback((step: string) => {
    setServerErrors((current) => {
      if (!(step in current)) return current;
      const rest = { ...current };
      delete rest[step];
      return rest;
    });
  }, []);
  const value = useMemo(() => ({ serverErrors, setServerErrors, clearStep }), [serverErrors, clearStep]);
  return <Context.Provider value={value}>{children}</Context.Provider>;
}

export function useWizardState() {
  const value = useContext(Context);
  if (value === null) throw new Error("wrap in <WizardState>");
  return value;
}
