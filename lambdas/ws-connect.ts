import {
  CONNECTION_TTL_S,
  type Connection,
  deleteMembership,
  putConnection,
  putMembership,
  removeConnection,
} from './core/connections.ts';
import type { Deps } from './core/deps.ts';
import { userRoom } from './core/rooms.ts';
import { sessionMessageKey } from './core/sessions.ts';
import { releaseSlots, type SlotHolder, slotHolders, takeSlot } from './core/socket-slots.ts';
import { forgetConnection } from './core/sockets.ts';
import { identityOf, offeredProtocols, sourceIp } from './edge/ws.ts';
import type { WsProxyEvent, WsProxyResult } from './edge/ws-types.ts';
import { lambdaEntry } from './runtime.ts';

/** API Gateway's integration timeout: a younger socket may be a handshake still in progress. */
const STALE_AFTER_MS = 30_000;

/**
 * `$connect`: stores the socket (user, token ids, live `exp`, IP) and answers the
 * `jwt` subprotocol when the client offered it (never the token). The socket must take
 * one of the user's `maxConnectionsPerUser` slots (a conditional write, exact under any
 * concurrency); when all are held, the holders old enough to be stale are checked with
 * GetConnection, those gone are dropped, and the slot is tried once more before 403.
 * The socket is in its user's `user:` room from the start: the membership is written
 * beside the row that lists it, in the same round trip.
 */
export function makeConnectHandler(deps: Deps) {
  return async (event: WsProxyEvent): Promise<WsProxyResult> => {
    const id = identityOf(event);
    const personal = userRoom(id.username);
    const connection: Connection = {
      ...id,
      ip: sourceIp(event),
      connectedAt: event.requestContext.connectedAt ?? deps.clock.now(),
      rooms: [personal],
    };
    const max = deps.settings.maxConnectionsPerUser;
    let admitted: boolean;
    let stored = false;
    if (deps.settings.messageEncryption) {
      // The socket's frames are encrypted with its session's key: read it before the row is written.
      const [messageKey, slot] = await Promise.all([
        sessionMessageKey(deps, id.sid),
        takeSlot(deps, connection, max),
      ]);
      admitted = slot || (await reclaimStaleSlots(deps, connection, max));
      if (admitted) {
        await Promise.all([
          putConnection(deps, { ...connection, messageKey }),
          putMembership(deps, { ...connection, messageKey }, personal),
        ]);
        stored = true;
      }
    } else {
      const [, , slot] = await Promise.all([
        putConnection(deps, connection),
        putMembership(deps, connection, personal),
        takeSlot(deps, connection, max),
      ]);
      stored = true;
      admitted = slot || (await reclaimStaleSlots(deps, connection, max));
    }
    if (!admitted) {
      if (stored)
        await Promise.all([
          removeConnection(deps, id.connectionId),
          deleteMembership(deps, personal, id.connectionId),
        ]);
      deps.audit('warn', 'ws.denied', {
        username: id.username,
        sub: id.sub,
        ip: connection.ip,
        connectionId: id.connectionId,
        reason: 'too_many_connections',
      });
      return { statusCode: 403 };
    }
    deps.audit('info', 'ws.connect', {
      username: id.username,
      sub: id.sub,
      ip: connection.ip,
      connectionId: id.connectionId,
    });
    const protocol = offeredProtocols(event).includes('jwt') ? 'jwt' : undefined;
    return { statusCode: 200, ...(protocol ? { headers: { 'Sec-WebSocket-Protocol': protocol } } : {}) };
  };
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
        if (age > CONNECTION_TTL_S * 1000) return h;
        // A socket still inside its own $connect answers 410 too: only older ones can be stale.
        if (!deps.api || age < STALE_AFTER_MS) return undefined;
        return (await deps.api.exists(h.connectionId).catch(() => true)) ? undefined : h;
      }),
    )
  ).filter((h): h is SlotHolder => h !== undefined);
  if (stale.length === 0) return false;
  await Promise.all([
    releaseSlots(deps, me.username, stale),
    ...stale.map((h) => forgetConnection(deps, h.connectionId)),
  ]);
  return takeSlot(deps, me, max);
}

export const handler = lambdaEntry(makeConnectHandler);
