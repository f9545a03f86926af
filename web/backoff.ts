/**
 * Delay before reconnect attempt `attempt` (1, 2, ...): `baseMs` doubling per attempt up
 * to `maxMs`, then jittered into its upper half so that clients dropped together (a
 * deploy, API Gateway's 2-hour cut) do not come back together.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
