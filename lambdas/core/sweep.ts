import { accessRefs, accessStateFrom } from './access.ts';
import { nowS } from './clock.ts';
import type { Deps } from './deps.ts';
import { deleteMembership, orphanMemberships } from './memberships.ts';
import { closeReason } from './socket-access.ts';
import { allSocketRows, type SocketRow, socketsWithoutRow } from './socket-rows.ts';
import { type CloseReason, closeSocket, forgetSocket } from './sockets.ts';
import { batchGet } from './store.ts';

/** API Gateway ends every socket after 2 hours; a row older than this is a socket that is certainly gone. */
const MAX_SOCKET_AGE_S = 2 * 3600 + 60;
/**
 * API Gateway's integration timeout: a socket younger than this may still be inside its
 * `$connect`, its row written but unknown to GetConnection (410) until the upgrade ends.
 */
const HANDSHAKE_GRACE_MS = 30_000;
/** Rows checked per BatchGetItem (5 keys each, under the 100-key limit). */
const CHUNK = 20;

export interface SweepReport {
  readonly checked: number;
  readonly closed: Readonly<Record<CloseReason, number>>;
  readonly forgotten: number;
  readonly orphansRemoved: number;
}

/**
 * Closes what the push path missed: sockets whose live token has expired, been revoked
 * or belongs to a blocked user. Forgets rows of sockets API Gateway no longer knows
 * (over the 2-hour limit, or 410 on GetConnection) and memberships left without a socket.
 */
export async function sweep(deps: Deps): Promise<SweepReport> {
  const now = nowS(deps.clock);
  const tally: SweepTally = { closed: { token_expired: 0, token_revoked: 0, blocked: 0 }, forgotten: 0 };
  // Expired rows too: dynalite never deletes them and DynamoDB only late.
  const sockets = await allSocketRows(deps, { includeExpired: true });
  for (let i = 0; i < sockets.length; i += CHUNK) {
    await sweepChunk(deps, sockets.slice(i, i + CHUNK), now, tally);
  }
  const orphansRemoved = await removeOrphanMemberships(deps, sockets);
  const report = {
    checked: sockets.length,
    closed: tally.closed,
    forgotten: tally.forgotten,
    orphansRemoved,
  };
  deps.audit('info', 'sweep.run', { count: sockets.length });
  return report;
}

interface SweepTally {
  readonly closed: Record<CloseReason, number>;
  forgotten: number;
}

/** One BatchGetItem of the chunk's access rows, then each socket closed, forgotten or kept, in parallel. */
async function sweepChunk(
  deps: Deps,
  chunk: readonly SocketRow[],
  now: number,
  tally: SweepTally,
): Promise<void> {
  const subjects = chunk.map((c) => ({ claims: c, username: c.username }));
  const refs = subjects.map((subject) => accessRefs(deps, subject));
  // Eventually consistent: the sweeper is the backstop for what the push path missed, and a
  // revocation or block missed minutes ago is in every view; a stale one only defers a close by a sweep.
  const rows = await batchGet(deps.db, refs.flat());
  // Each socket's rows, in the order asked: they start where the previous socket's ended.
  let offset = 0;
  const rowsOf = refs.map((r) => {
    offset += r.length;
    return rows.slice(offset - r.length, offset);
  });
  await Promise.all(
    subjects.map(async (subject, j) => {
      const c = subject.claims;
      const state = accessStateFrom(subject, rowsOf[j] ?? [], now);
      const reason = closeReason(c, state, now, deps.settings.clockSkewS);
      try {
        if (reason) {
          // Condemned by the row read above: closed only if its row still holds that token.
          if (await closeSocket(deps, c, reason, { ifJti: c.jti })) tally.closed[reason]++;
        } else if (await isGone(deps, c, now)) {
          await forgetSocket(deps, c.connectionId);
          tally.forgotten++;
        }
      } catch (err) {
        deps.audit('warn', 'error', {
          reason: 'sweep_failed',
          connectionId: c.connectionId,
          errorName: (err as Error).name,
        });
      }
    }),
  );
}

/** Over API Gateway's 2-hour limit, or past the handshake and unknown to it (410). */
async function isGone(deps: Deps, c: SocketRow, now: number): Promise<boolean> {
  return (
    now - Math.floor(c.connectedAt / 1000) > MAX_SOCKET_AGE_S ||
    (deps.api !== undefined &&
      deps.clock.now() - c.connectedAt >= HANDSHAKE_GRACE_MS &&
      !(await deps.api.exists(c.connectionId)))
  );
}

/**
 * A membership is an orphan only if its socket has no row now, read right before the
 * delete: sockets that connected and joined since the first read are not in it.
 */
async function removeOrphanMemberships(deps: Deps, sockets: readonly SocketRow[]): Promise<number> {
  const seen = new Set(sockets.map((c) => c.connectionId));
  const candidates = await orphanMemberships(deps, seen, {
    nowMs: deps.clock.now(),
    youngerThanMs: HANDSHAKE_GRACE_MS,
  });
  const gone = new Set(
    await socketsWithoutRow(
      deps,
      candidates.map((o) => o.connectionId),
    ),
  );
  const orphans = candidates.filter((o) => gone.has(o.connectionId));
  await Promise.all(orphans.map((o) => deleteMembership(deps, o.room, o.connectionId)));
  return orphans.length;
}
