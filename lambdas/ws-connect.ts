import { type Connection, connectionsOfUser, putConnection, removeConnection } from './core/connections.ts';
import type { Deps } from './core/deps.ts';
import { sessionMessageKey } from './core/sessions.ts';
import { forgetConnection } from './core/sockets.ts';
import { identityOf, offeredProtocols, sourceIp } from './edge/ws.ts';
import type { WsProxyEvent, WsProxyResult } from './edge/ws-types.ts';
import { lambdaEntry } from './runtime.ts';

/** API Gateway's integration timeout: a younger row may belong to a handshake still in progress. */
const STALE_AFTER_MS = 30_000;

/**
 * `$connect`: stores the socket (user, token ids, live `exp`, IP) and answers the
 * `jwt` subprotocol when the client offered it (never the token). Over
 * `maxConnectionsPerUser` the handshake is refused, after stale rows (sockets API
 * Gateway no longer knows) are checked with GetConnection and dropped.
 */
export function makeConnectHandler(deps: Deps) {
  return async (event: WsProxyEvent): Promise<WsProxyResult> => {
    const id = identityOf(event);
    const base = {
      ...id,
      ip: sourceIp(event),
      connectedAt: event.requestContext.connectedAt ?? deps.clock.now(),
      rooms: [],
    };
    let connection: Connection = base;
    let existing: Connection[];
    if (deps.settings.messageEncryption) {
      // The socket's frames are encrypted with its session's key: read it before the row is written.
      const [messageKey, others] = await Promise.all([
        sessionMessageKey(deps, id.sid),
        connectionsOfUser(deps, id.username),
      ]);
      connection = { ...base, messageKey };
      existing = others;
      await putConnection(deps, connection);
    } else {
      [, existing] = await Promise.all([
        putConnection(deps, connection),
        connectionsOfUser(deps, id.username),
      ]);
    }
    // Only sockets that came before this one count, so overlapping handshakes admit
    // at most the first N (never more), and none of them can judge another stale.
    const mine = connection.connectedAt;
    const earlier = existing.filter(
      (c) =>
        c.connectionId !== id.connectionId &&
        (c.connectedAt < mine || (c.connectedAt === mine && c.connectionId < id.connectionId)),
    );
    if (earlier.length >= deps.settings.maxConnectionsPerUser) {
      const live = await Promise.all(
        earlier.map(async (c) => {
          // A socket still inside its own $connect answers 410 too: only older rows can be stale.
          if (!deps.api || mine - c.connectedAt < STALE_AFTER_MS) return true;
          if (await deps.api.exists(c.connectionId).catch(() => true)) return true;
          await forgetConnection(deps, c.connectionId);
          return false;
        }),
      );
      if (live.filter(Boolean).length >= deps.settings.maxConnectionsPerUser) {
        await removeConnection(deps, id.connectionId);
        deps.audit('warn', 'ws.denied', {
          username: id.username,
          sub: id.sub,
          ip: connection.ip,
          connectionId: id.connectionId,
          reason: 'too_many_connections',
        });
        return { statusCode: 403 };
      }
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

export const handler = lambdaEntry(makeConnectHandler);
