import { connectionsOfUser, deleteConnectionRows, putConnection } from './core/connections.ts';
import type { Deps } from './core/deps.ts';
import { identityOf, offeredProtocols, sourceIp } from './edge/ws.ts';
import type { WsProxyEvent, WsProxyResult } from './edge/ws-types.ts';
import { lambdaEntry } from './runtime.ts';

/**
 * `$connect`: stores the socket (user, token ids, live `exp`, IP) and answers the
 * `jwt` subprotocol when the client offered it (never the token). Over
 * `maxConnectionsPerUser` the handshake is refused, after stale rows (sockets API
 * Gateway no longer knows) are checked with GetConnection and dropped.
 */
export function makeConnectHandler(deps: Deps) {
  return async (event: WsProxyEvent): Promise<WsProxyResult> => {
    const id = identityOf(event);
    const connection = {
      ...id,
      ip: sourceIp(event),
      connectedAt: event.requestContext.connectedAt ?? deps.clock.now(),
      rooms: [],
    };
    const [, existing] = await Promise.all([
      putConnection(deps, connection),
      connectionsOfUser(deps, id.username),
    ]);
    const others = existing.filter((c) => c.connectionId !== id.connectionId);
    if (others.length >= deps.settings.maxConnectionsPerUser) {
      const live = await Promise.all(
        others.map(async (c) => {
          if (!deps.api || (await deps.api.exists(c.connectionId).catch(() => true))) return true;
          await deleteConnectionRows(deps, c.connectionId, c.rooms);
          return false;
        }),
      );
      if (live.filter(Boolean).length >= deps.settings.maxConnectionsPerUser) {
        await deleteConnectionRows(deps, id.connectionId, []);
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
