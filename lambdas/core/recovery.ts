import type { Deps } from './deps.ts';
import { type ChatMessage, type MessagesSince, messagesSince, recentMessages } from './history.ts';
import { type RoomPosition, roomPosition } from './sequence.ts';

type StoreDeps = Pick<Deps, 'db' | 'tables' | 'settings'>;

/** What a `joined` reply says of the room's messages. */
export interface JoinHistory {
  readonly position: RoomPosition;
  readonly history: ChatMessage[];
  /** Only when the join asked with `since`. */
  readonly recovered?: boolean;
}

/**
 * The room's position and the history a join gets. Without `since`: its latest `history`
 * messages. With `since`: every message after it, when the room still holds them all
 * (same epoch, none expired, at most `maxRecoveryMessages`), with `recovered: true`;
 * otherwise `recovered: false` and the latest `history` messages, as without `since`.
 * One round trip (the counter's GetItem beside one history Query), two when recovery fails.
 */
export async function joinHistory(
  deps: StoreDeps,
  room: string,
  want: { readonly history: number; readonly since?: Pick<RoomPosition, 'epoch' | 'seq'> },
  nowMs: number,
): Promise<JoinHistory> {
  const nowSeconds = Math.floor(nowMs / 1000);
  const since = want.since;
  if (!since) {
    const [position, history] = await Promise.all([
      roomPosition(deps, room, nowMs),
      recentMessages(deps, room, want.history, nowSeconds),
    ]);
    return { position, history };
  }
  const [position, held] = await Promise.all([
    roomPosition(deps, room, nowMs),
    deps.settings.historyTtlS > 0
      ? messagesSince(deps, room, since, deps.settings.maxRecoveryMessages, nowSeconds)
      : undefined,
  ]);
  if (recoverable(deps.settings.historyTtlS, position, since, held, nowSeconds)) {
    return { position, history: held?.messages ?? [], recovered: true };
  }
  return { position, history: await recentMessages(deps, room, want.history, nowSeconds), recovered: false };
}

function recoverable(
  historyTtlS: number,
  position: RoomPosition,
  since: Pick<RoomPosition, 'epoch' | 'seq'>,
  held: MessagesSince | undefined,
  nowSeconds: number,
): boolean {
  if (position.epoch !== since.epoch || since.seq > position.seq) return false;
  // Nothing numbered since: nothing to miss.
  if (since.seq === position.seq) return held === undefined || !held.incomplete;
  if (!held || held.incomplete) return false;
  // The message at `since` is still held, so every later one (younger) is too: none has expired.
  if (held.anchored) return true;
  // From the epoch's start: every message of it is younger than the epoch itself.
  return since.seq === 0 && position.startedAt + historyTtlS > nowSeconds;
}
