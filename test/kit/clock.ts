import type { Clock } from '../../lambdas/core/clock.ts';

/** A clock tests move by hand; it starts at `ms` (now by default) and stands still. */
export class TestClock implements Clock {
  constructor(private ms = Date.now()) {}
  now(): number {
    return this.ms;
  }
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

/** A clock that runs with real time (for code whose timers are real) and can jump ahead. */
export class LiveClock extends TestClock {
  #offsetMs = 0;
  override now(): number {
    return Date.now() + this.#offsetMs;
  }
  override advance(seconds: number): void {
    this.#offsetMs += seconds * 1000;
  }
}
