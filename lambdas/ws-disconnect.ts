import { deleteConnectionRows, getConnection, roomMembers } from './core/connections.ts';
import type { Deps } from './core/deps.ts';
import { sendToConnections } from './core/sockets.ts';
import { identityOf } from './edge/ws.ts';
import type { WsProxyEvent, WsProxyResult } from './edge/ws-types.ts';
import { lambdaEntry } from './runtime.ts';

/**
 * `$disconnect`: removes the socket and its memberships and tells each room. API
 * Gateway delivers it on a best-effort basis, so the sweeper and TTL clean up too.
 */
export function makeDisconnectHandler(deps: Deps) {
  return async (event: WsProxyEvent): Promise<WsProxyResult> => {
    const id = identityOf(event);
    const conn = await getConnection(deps, id.connectionId);
    const rooms = conn?.rooms ?? [];
    await deleteConnectionRows(deps, id.connectionId, rooms);
    await Promise.all(
      rooms.map(async (room) => {
        const members = await roomMembers(deps, room);
        await sendToConnections(
          deps,
          members.map((m) => m.connectionId),
          { type: 'member_left', room, username: id.username },
        );
      }),
    );
    const code = event.requestContext.disconnectStatusCode;
    deps.audit('info', 'ws.disconnect', {
      username: id.username,
      sub: id.sub,
      connectionId: id.connectionId,
      reason: code === undefined ? undefined : `code ${code}`,
    });
    return { statusCode: 200 };
  };
}

export const handler = lambdaEntry(makeDisconnectHandler);
