import type { Deps } from './core/deps.ts';
import { type SweepReport, sweep } from './core/sweep.ts';
import { lambdaEntry } from './runtime.ts';

/** The scheduled sweeper (EventBridge on AWS, a timer locally). */
export function makeSweeperHandler(deps: Deps) {
  return async (): Promise<SweepReport> => sweep(deps);
}

export const handler = lambdaEntry(makeSweeperHandler);
