import type { Deps } from './core/deps.ts';
import { deleteGrant, listGrants, putGrant } from './core/grants.ts';
import { PUBLISHER_ROLES } from './core/rooms.ts';
import { roleRoute } from './edge/admin.ts';
import { json, noContent } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/**
 * `PUT /admin/rooms/{room}/grants/{username} {access}`, `DELETE` of the same path, and
 * `GET /admin/rooms/{room}/grants` (roles admin or publisher).
 */
export function makeRoomGrantsHandler(deps: Deps) {
  return roleRoute(deps, PUBLISHER_ROLES, async (req, caller) => {
    const { room, username } = req.pathParameters;
    if (req.method === 'GET') return json(200, { grants: await listGrants(deps, room) });
    if (req.method === 'DELETE') await deleteGrant(deps, caller, room, username);
    else await putGrant(deps, caller, room, username, req.body());
    return noContent();
  });
}

export const handler = lambdaEntry(makeRoomGrantsHandler);
