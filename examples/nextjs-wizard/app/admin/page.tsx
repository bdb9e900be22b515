"use client";
// For organization admins: the funnel (GET /analytics/funnel) and the
// organization's AI policy (a route the backend may not have yet).
import { useEffect, useState } from "react";
import { ProblemError, type AiPolicy, type Funnel } from "@onboarding/client";
import { client } from "../../lib/client";

export default function AdminPage() {
  const [funnel, setFunnel] = useState<Funnel>();
  const [funnelProblem, setFunnelProblem] = useState<ProblemError>();
  // undefined: loading; null: the backend has no AI policy route.
  const [policy, setPolicy] = useState<AiPolicy | null>();
  const [policyProblem, setPolicyProblem] = useState<ProblemError>();

  useEffect(() => {
    client.funnel().then(setFunnel, (caught: unknown) => {
      if (caught instanceof ProblemError) setFunnelProblem(caught);
    });
    client.aiPolicy().then(
      (found) => setPolicy(found ?? null),
      (caught: unknown) => {
        if (caught instanceof ProblemError) setPolicyProblem(caught);
      },
    );
  }, []);

  const toggle = async (aiAllowed: boolean) => {
    try {
      const saved = await client.setAiPolicy({ aiAllowed });
      setPolicy(saved ?? null);
      setPolicyProblem(undefined);
    } catch (caught) {
      if (caught instanceof ProblemError) setPolicyProblem(caught);
    }
  };

  return (
    <section>
      <h1>Organization admin</h1>
      <h2>Onboarding funnel (last 30 days)</h2>
      {funnelProblem && (
        <p className="error" role="alert">
          {funnelProblem.status === 403 ? "Only organization admins see the funnel." : funnelProblem.detail}
        </p>
      )}
      {funnel && (
        <table data-testid="funnel">
          <thead>
            <tr>
              <th>Step</th>
              <th>Reached</th>
              <th>Completed</th>
              <th>Dropped</th>
              <th>Median time (s)</th>
            </tr>
          </thead>
          <tbody>
            {funnel.steps.map((step) => (
              <tr key={step.step}>
                <td>{step.step}</td>
                <td>{step.reached}</td>
                <td>{step.completed}</td>
                <td>{step.dropped}</td>
                <td>{step.medianSeconds ?? "–"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>AI suggestions for members</h2>
      {policyProblem && (
        <p className="error" role="alert">
          {policyProblem.detail}
        </p>
      )}
      {policy === null && (
        <p data-testid="ai-policy-unavailable" className="muted">
          This backend has no organization AI policy route yet; members decide for themselves.
        </p>
      )}
      {policy && (
        <div data-testid="ai-policy">
          <p>AI suggestions are {policy.aiAllowed ? "allowed (each member still opts in)" : "forbidden for every member"}.</p>
          <button type="button" onClick={() => void toggle(!policy.aiAllowed)}>
            {policy.aiAllowed ? "Forbid AI" : "Allow AI"}
          </button>
        </div>
      )}
    </section>
  );
}
