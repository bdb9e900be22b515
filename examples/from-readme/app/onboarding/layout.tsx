"use client";
import type { ReactNode } from "react";
import { OnboardingProvider } from "@onboarding/client/react";
import { client } from "../../lib/client";

export default function OnboardingLayout({ children }: { children: ReactNode }) {
  return <OnboardingProvider client={client}>{children}</OnboardingProvider>;
}
