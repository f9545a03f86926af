import { listConnections } from './core/admin.ts';
import type { Deps } from './core/deps.ts';
import { roleRoute } from './edge/admin.ts';
import { json } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/** `GET /admin/connections` (role admin). */
export function makeConnectionsHandler(deps: Deps) {
  return roleRoute(deps, ['admin'], async () => json(200, { connections: await listConnections(deps) }));
}

export const handler = lambdaEntry(makeConnectionsHandler);
