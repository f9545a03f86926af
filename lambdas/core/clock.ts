/** Time source, injectable so tests can move time instead of sleeping. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export function nowS(clock: Clock): number {
  return Math.floor(clock.now() / 1000);
}
