import type { FunctionSpec } from '../lambdas/functions.ts';

/**
 * Functions that share a load profile, and so one set of alarms and one concurrency
 * setting. Derived from the manifest, never listed beside it: a new entry joins a group by
 * what it is (argon2, a WebSocket route, the schedule, an HTTP route).
 */
export type FunctionGroup = 'passwords' | 'handshake' | 'messages' | 'sweeper' | 'http';

export interface GroupInfo {
  /** Used in alarm names: `<Title>Errors`. */
  readonly title: string;
  readonly description: string;
}

export const FUNCTION_GROUPS: Readonly<Record<FunctionGroup, GroupInfo>> = {
  passwords: { title: 'Passwords', description: 'register and login (argon2 at 1 GB)' },
  handshake: { title: 'Handshake', description: 'the $connect authorizer and $connect' },
  messages: { title: 'Messages', description: '$default, $disconnect and the fan-out workers' },
  sweeper: { title: 'Sweeper', description: 'the scheduled sweeper' },
  http: { title: 'Http', description: 'the other HTTP routes' },
};

export const GROUP_NAMES = Object.keys(FUNCTION_GROUPS) as FunctionGroup[];

/** The group of one manifest entry. */
export function functionGroup(spec: FunctionSpec): FunctionGroup {
  if (spec.name === 'sweeper' || spec.schedule === 'sweep') return 'sweeper';
  if (spec.argon2) return 'passwords';
  if (spec.fanoutQueue === 'work') return 'messages';
  const ws = spec.wsRoutes ?? [];
  if (ws.includes('authorizer') || ws.includes('$connect')) return 'handshake';
  if (ws.length > 0) return 'messages';
  return 'http';
}
