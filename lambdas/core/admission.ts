import type { Deps } from './deps.ts';
import { deleteMembership, putMembership } from './memberships.ts';
import { userRoom } from './rooms.ts';
import { sessionMessageKey } from './sessions.ts';
import { deleteSocketRow, putSocketRow, SOCKET_TTL_S, type SocketRow } from './socket-rows.ts';
import { releaseSlots, type SlotHolder, slotHolders, takeSlot } from './socket-slots.ts';
import { forgetSocket } from './sockets.ts';

/** API Gateway's integration timeout: a younger socket may be a handshake still in progress. */
const STALE_AFTER_MS = 30_000;

/**
 * Admits a new socket (`$connect`): stores it (user, token ids, live `exp`, IP) if it takes
 * one of the user's `maxConnectionsPerUser` slots (a conditional write, exact under any
 * concurrency); when all are held, the holders old enough to be stale are checked with
 * GetConnection, those gone are dropped, and the slot is tried once more. False (nothing
 * stored) when the user holds all its slots. The socket is in its user's `user:` room from
 * the start: the membership is written beside the row that lists it, in the same round trip.
 */
export async function admitSocket(deps: Deps, socket: Omit<SocketRow, 'rooms'>): Promise<boolean> {
  const personal = userRoom(socket.username);
  const row: SocketRow = { ...socket, rooms: [personal] };
  const { admitted, stored } = await storeIfSlot(deps, row, personal);
  const entry = {
    username: socket.username,
    sub: socket.sub,
    ip: socket.ip,
    connectionId: socket.connectionId,
  };
  if (!admitted) {
    if (stored)
      await Promise.all([
        deleteSocketRow(deps, socket.connectionId),
        deleteMembership(deps, personal, socket.connectionId),
      ]);
    deps.audit('warn', 'ws.denied', { ...entry, reason: 'too_many_connections' });
    return false;
  }
  deps.audit('info', 'ws.connect', entry);
  return true;
}

/**
 * Takes a slot and writes the socket's row and `user:` membership. Without encryption the
 * writes go beside the slot, in the same round trip (`stored` says whether they were made);
 * with it, the session's key is read beside the slot and the rows are written once admitted.
 */
async function storeIfSlot(
  deps: Deps,
  row: SocketRow,
  personal: string,
): Promise<{ admitted: boolean; stored: boolean }> {
  const max = deps.settings.maxConnectionsPerUser;
  if (deps.settings.messageEncryption) {
    // The socket's frames are encrypted with its session's key: read it before the row is written.
    const [messageKey, slot] = await Promise.all([
      sessionMessageKey(deps, row.sid),
      takeSlot(deps, row, max),
    ]);
    const admitted = slot || (await reclaimStaleSlots(deps, row, max));
    if (!admitted) return { admitted, stored: false };
    await Promise.all([
      putSocketRow(deps, { ...row, messageKey }),
      putMembership(deps, { ...row, messageKey }, personal),
    ]);
    return { admitted, stored: true };
  }
  const [, , slot] = await Promise.all([
    putSocketRow(deps, row),
    putMembership(deps, row, personal),
    takeSlot(deps, row, max),
  ]);
  return { admitted: slot || (await reclaimStaleSlots(deps, row, max)), stored: true };
}

/**
 * Frees the slots of sockets API Gateway no longer knows ($disconnect is best effort),
 * then tries the slot again. Racing handshakes may free the same slot: the retry is
 * the same conditional write, so still only as many pass as there are free slots.
 */
async function reclaimStaleSlots(deps: Deps, me: SlotHolder, max: number): Promise<boolean> {
  const holders = (await slotHolders(deps, me.username)).filter((h) => h.connectionId !== me.connectionId);
  const stale = (
    await Promise.all(
      holders.map(async (h) => {
        const age = me.connectedAt - h.connectedAt;
        if (age > SOCKET_TTL_S * 1000) return h;
        // A socket still inside its own $connect answers 410 too: only older ones can be stale.
        if (!deps.api || age < STALE_AFTER_MS) return undefined;
        return (await deps.api.exists(h.connectionId).catch(() => true)) ? undefined : h;
      }),
    )
  ).filter((h): h is SlotHolder => h !== undefined);
  if (stale.length === 0) return false;
  await Promise.all([
    releaseSlots(deps, me.username, stale),
    ...stale.map((h) => forgetSocket(deps, h.connectionId)),
  ]);
  return takeSlot(deps, me, max);
}
