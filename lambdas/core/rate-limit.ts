import { blockId, putBlock } from './access.ts';
import { incrementCounter, secondsLeft, type Window, windowAt } from './counters.ts';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import type { Settings } from './settings.ts';
import { closeUserSockets } from './sockets.ts';

/** Who sent a frame, as the rate limit's audit lines name them. */
export interface RateSubject {
  readonly connectionId: string;
  readonly sub: string;
  readonly username: string;
}

/** One frame counted against its user's window. */
export interface FrameCount {
  readonly count: number;
  readonly window: Window;
}

/**
 * What a user's count in the window says of its latest frame: within the limit; over it
 * (`first`: the window's first frame over it); or so far over (more than
 * `blockAfterViolations` frames) that the user is blocked.
 */
export type RateVerdict =
  | { readonly kind: 'ok' }
  | { readonly kind: 'limited'; readonly first: boolean }
  | { readonly kind: 'block'; readonly violations: number };

type RateDeps = Pick<Deps, 'db' | 'tables' | 'clock' | 'api' | 'audit'> & {
  readonly settings: Pick<
    Settings,
    'rateLimitMax' | 'rateLimitWindowS' | 'blockAfterViolations' | 'blockDurationS'
  >;
};

/**
 * Counts one frame of a user: one atomic ADD on `ws#<sub>` in the fixed window of
 * `rateLimitWindowS`, shared by all of the user's sockets and containers.
 */
export async function countFrame(
  deps: Pick<RateDeps, 'db' | 'tables' | 'settings'>,
  sub: string,
  nowSeconds: number,
): Promise<FrameCount> {
  const window = windowAt(nowSeconds, deps.settings.rateLimitWindowS);
  return { count: await incrementCounter(deps, `ws#${sub}`, window), window };
}

/** The verdict on a count: see `RateVerdict`. */
export function rateVerdict(
  count: number,
  limits: Pick<Settings, 'rateLimitMax' | 'blockAfterViolations'>,
): RateVerdict {
  const violations = count - limits.rateLimitMax;
  if (violations <= 0) return { kind: 'ok' };
  if (violations > limits.blockAfterViolations) return { kind: 'block', violations };
  return { kind: 'limited', first: violations === 1 };
}

/**
 * Holds a counted frame to the limit. Over it, throws `rate_limited` with the seconds left in
 * the window (audited once per window, `ws.rate_limited`). Past `blockAfterViolations`, blocks
 * the user for `blockDurationS` (`user.blocked`, by `system`), closes every socket of theirs
 * and resolves `blocked`: the frame gets no answer.
 */
export async function enforceRateLimit(
  deps: RateDeps,
  sender: RateSubject,
  counted: FrameCount,
  nowSeconds: number,
): Promise<'ok' | 'blocked'> {
  const verdict = rateVerdict(counted.count, deps.settings);
  if (verdict.kind === 'ok') return 'ok';
  if (verdict.kind === 'block') {
    await blockForViolations(deps, sender, verdict.violations);
    return 'blocked';
  }
  if (verdict.first)
    deps.audit('warn', 'ws.rate_limited', {
      username: sender.username,
      sub: sender.sub,
      connectionId: sender.connectionId,
    });
  throw new AppError('rate_limited', 'too many messages; slow down', {
    retryAfterS: secondsLeft(counted.window, nowSeconds),
  });
}

async function blockForViolations(deps: RateDeps, sender: RateSubject, violations: number): Promise<void> {
  const { blockDurationS } = deps.settings;
  await putBlock(deps, blockId.user(sender.username), blockDurationS, 'rate_limit_violations', 'system');
  deps.audit('warn', 'user.blocked', {
    username: sender.username,
    sub: sender.sub,
    reason: 'rate_limit_violations',
    count: violations,
    durationS: blockDurationS,
    by: 'system',
  });
  await closeUserSockets(deps, sender.username, 'blocked');
}
